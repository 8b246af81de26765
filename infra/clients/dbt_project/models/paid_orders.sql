{{ config(materialized='view') }}
select id, upper(who) as who, amount
from {{ source('shop', 'orders') }}
where amount > 10
