-- Fails once an order above 1000 reaches the streaming table.
select id, amount from {{ ref('paid_orders_topic') }} where amount > 1000
