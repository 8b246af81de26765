{{ config(materialized='streaming_table') }}
select id, who, amount from {{ ref('paid_orders') }}
