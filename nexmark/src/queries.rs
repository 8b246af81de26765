//! The Nexmark tables and queries in Flink SQL.
//!
//! The queries are the Flink Nexmark suite's, with its `INSERT INTO` a
//! blackhole sink left off: each is the `SELECT` a statement runs. The
//! three tables are Kafka topics of JSON records (Flink's suite derives
//! them as views of one generated table; the columns and the watermark are
//! the same). Each topic has one partition, so that records are read in
//! the order they were generated.

/// `CREATE TABLE` statements for `person`, `auction` and `bid`.
pub const TABLES: [&str; 3] = [
    "CREATE TABLE person (
        id BIGINT, name STRING, emailAddress STRING, creditCard STRING,
        city STRING, state STRING, dateTime TIMESTAMP(3), extra STRING,
        WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
    ) DISTRIBUTED INTO 1 BUCKETS WITH ('value.format' = 'json', 'scan.startup.mode' = 'earliest-offset')",
    "CREATE TABLE auction (
        id BIGINT, itemName STRING, description STRING, initialBid BIGINT,
        reserve BIGINT, dateTime TIMESTAMP(3), expires TIMESTAMP(3),
        seller BIGINT, category BIGINT, extra STRING,
        WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
    ) DISTRIBUTED INTO 1 BUCKETS WITH ('value.format' = 'json', 'scan.startup.mode' = 'earliest-offset')",
    "CREATE TABLE bid (
        auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING,
        dateTime TIMESTAMP(3), extra STRING,
        WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
    ) DISTRIBUTED INTO 1 BUCKETS WITH ('value.format' = 'json', 'scan.startup.mode' = 'earliest-offset')",
];

/// `CREATE TABLE` for q13's side input: in Flink's suite a bounded file
/// it looks up; here an upsert topic of [`side_input`]'s rows, keyed by
/// `key`.
pub const SIDE_INPUT_TABLE: &str = "CREATE TABLE side_input (
        key BIGINT, `value` STRING, PRIMARY KEY (key) NOT ENFORCED
    ) DISTRIBUTED INTO 1 BUCKETS WITH ('value.format' = 'json', 'scan.startup.mode' = 'earliest-offset')";

/// How many keys the side input has: `0..SIDE_INPUT_KEYS`, as q13's
/// `mod(auction, 10000)` reads them.
pub const SIDE_INPUT_KEYS: i64 = 10_000;

/// The value the side input holds for `key`.
pub fn side_input_value(key: i64) -> String {
    format!("side-{key}")
}

/// The side input's records: the JSON key (the primary key, as Weir keys
/// an upsert table) and value of each row.
pub fn side_input() -> impl Iterator<Item = (String, String)> {
    (0..SIDE_INPUT_KEYS).map(|k| {
        (
            format!("{{\"key\":{k}}}"),
            format!("{{\"key\":{k},\"value\":\"{}\"}}", side_input_value(k)),
        )
    })
}

/// A query Weir runs: its name (`q0`...) and SQL.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub name: &'static str,
    /// What it shows, from the suite.
    pub title: &'static str,
    pub sql: &'static str,
}

/// The queries Weir runs.
pub const QUERIES: &[Query] = &[
    Query {
        name: "q0",
        title: "pass-through",
        sql: "SELECT auction, bidder, price, dateTime, extra FROM bid",
    },
    Query {
        name: "q1",
        title: "currency conversion",
        sql: "SELECT auction, bidder, 0.908 * price AS price, dateTime, extra FROM bid",
    },
    Query {
        name: "q2",
        title: "selection",
        sql: "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0",
    },
    Query {
        name: "q3",
        title: "local item suggestion (join)",
        sql: "SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')",
    },
    Query {
        name: "q4",
        title: "average price for a category (join, aggregation over updates)",
        sql: "SELECT Q.category, AVG(Q.final)
FROM (
    SELECT MAX(B.price) AS final, A.category
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
    GROUP BY A.id, A.category
) Q
GROUP BY Q.category",
    },
    Query {
        name: "q5",
        title: "hot items (hopping windows)",
        sql: "SELECT AuctionBids.auction, AuctionBids.num
FROM (
  SELECT auction, count(*) AS num, window_start AS starttime, window_end AS endtime
  FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
  GROUP BY auction, window_start, window_end
) AS AuctionBids
JOIN (
  SELECT max(CountBids.num) AS maxn, CountBids.starttime, CountBids.endtime
  FROM (
    SELECT count(*) AS num, window_start AS starttime, window_end AS endtime
    FROM TABLE(HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, INTERVAL '10' SECOND))
    GROUP BY auction, window_start, window_end
  ) AS CountBids
  GROUP BY CountBids.starttime, CountBids.endtime
) AS MaxBids
ON AuctionBids.starttime = MaxBids.starttime AND
   AuctionBids.endtime = MaxBids.endtime AND
   AuctionBids.num >= MaxBids.maxn",
    },
    Query {
        name: "q7",
        title: "highest bid (window, join)",
        sql: "SELECT B.auction, B.bidder, B.price, B.dateTime, B.extra
FROM bid B
JOIN (
  SELECT MAX(price) AS maxprice, window_end AS dateTime
  FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end
) B1
ON B.price = B1.maxprice
WHERE B.dateTime BETWEEN B1.dateTime - INTERVAL '10' SECOND AND B1.dateTime",
    },
    Query {
        name: "q8",
        title: "monitor new users (join of windows)",
        sql: "SELECT P.id, P.name, P.starttime
FROM (
  SELECT id, name, window_start AS starttime, window_end AS endtime
  FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
  GROUP BY id, name, window_start, window_end
) P
JOIN (
  SELECT seller, window_start AS starttime, window_end AS endtime
  FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
  GROUP BY seller, window_start, window_end
) A
ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime",
    },
    Query {
        name: "q9",
        title: "winning bids (Top-1 over a join)",
        sql: "SELECT
    id, itemName, description, initialBid, reserve, dateTime, expires, seller, category, extra,
    auction, bidder, price, bid_dateTime, bid_extra
FROM (
   SELECT A.*, B.auction, B.bidder, B.price, B.dateTime AS bid_dateTime, B.extra AS bid_extra,
     ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime ASC) AS rownum
   FROM auction A, bid B
   WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
)
WHERE rownum <= 1",
    },
    Query {
        name: "q10",
        title: "log to a file system (date-formatted partition columns)",
        // The suite writes these rows into a filesystem table partitioned
        // by the last two columns; here they go to the statement's sink.
        sql: "SELECT auction, bidder, price, dateTime, extra, DATE_FORMAT(dateTime, 'yyyy-MM-dd'), DATE_FORMAT(dateTime, 'HH:mm')
FROM bid",
    },
    Query {
        name: "q11",
        title: "user sessions (session window)",
        sql: "SELECT
    B.bidder,
    count(*) as bid_count,
    SESSION_START(B.dateTime, INTERVAL '10' SECOND) as starttime,
    SESSION_END(B.dateTime, INTERVAL '10' SECOND) as endtime
FROM bid B
GROUP BY B.bidder, SESSION(B.dateTime, INTERVAL '10' SECOND)",
    },
    Query {
        name: "q12",
        title: "bids per bidder per processing-time window",
        sql: "SELECT
    B.bidder,
    count(*) as bid_count,
    TUMBLE_START(B.p_time, INTERVAL '10' SECOND) as starttime,
    TUMBLE_END(B.p_time, INTERVAL '10' SECOND) as endtime
FROM (SELECT *, PROCTIME() as p_time FROM bid) B
GROUP BY B.bidder, TUMBLE(B.p_time, INTERVAL '10' SECOND)",
    },
    Query {
        name: "q13",
        title: "bounded side input join (processing-time lookup)",
        sql: "SELECT B.auction, B.bidder, B.price, B.dateTime, S.value
FROM (SELECT *, PROCTIME() as p_time FROM bid) B
JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
ON mod(B.auction, 10000) = S.key",
    },
    Query {
        name: "q15",
        title: "bidding statistics (COUNT DISTINCT with FILTER)",
        sql: "SELECT
     DATE_FORMAT(dateTime, 'yyyy-MM-dd') as `day`,
     count(*) AS total_bids,
     count(*) filter (where price < 10000) AS rank1_bids,
     count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
     count(*) filter (where price >= 1000000) AS rank3_bids,
     count(distinct bidder) AS total_bidders,
     count(distinct bidder) filter (where price < 10000) AS rank1_bidders,
     count(distinct bidder) filter (where price >= 10000 and price < 1000000) AS rank2_bidders,
     count(distinct bidder) filter (where price >= 1000000) AS rank3_bidders,
     count(distinct auction) AS total_auctions,
     count(distinct auction) filter (where price < 10000) AS rank1_auctions,
     count(distinct auction) filter (where price >= 10000 and price < 1000000) AS rank2_auctions,
     count(distinct auction) filter (where price >= 1000000) AS rank3_auctions
FROM bid
GROUP BY DATE_FORMAT(dateTime, 'yyyy-MM-dd')",
    },
    Query {
        name: "q16",
        title: "channel statistics (COUNT DISTINCT with FILTER, several keys)",
        sql: "SELECT
    channel,
    DATE_FORMAT(dateTime, 'yyyy-MM-dd') as `day`,
    max(DATE_FORMAT(dateTime, 'HH:mm')) as `minute`,
    count(*) AS total_bids,
    count(*) filter (where price < 10000) AS rank1_bids,
    count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
    count(*) filter (where price >= 1000000) AS rank3_bids,
    count(distinct bidder) AS total_bidders,
    count(distinct bidder) filter (where price < 10000) AS rank1_bidders,
    count(distinct bidder) filter (where price >= 10000 and price < 1000000) AS rank2_bidders,
    count(distinct bidder) filter (where price >= 1000000) AS rank3_bidders,
    count(distinct auction) AS total_auctions,
    count(distinct auction) filter (where price < 10000) AS rank1_auctions,
    count(distinct auction) filter (where price >= 10000 and price < 1000000) AS rank2_auctions,
    count(distinct auction) filter (where price >= 1000000) AS rank3_auctions
FROM bid
GROUP BY channel, DATE_FORMAT(dateTime, 'yyyy-MM-dd')",
    },
    Query {
        name: "q17",
        title: "auction statistics (unbounded group aggregation)",
        sql: "SELECT
     auction,
     DATE_FORMAT(dateTime, 'yyyy-MM-dd') as `day`,
     count(*) AS total_bids,
     count(*) filter (where price < 10000) AS rank1_bids,
     count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
     count(*) filter (where price >= 1000000) AS rank3_bids,
     min(price) AS min_price,
     max(price) AS max_price,
     avg(price) AS avg_price,
     sum(price) AS sum_price
FROM bid
GROUP BY auction, DATE_FORMAT(dateTime, 'yyyy-MM-dd')",
    },
    Query {
        name: "q18",
        title: "last bid per bidder and auction (deduplication)",
        sql: "SELECT auction, bidder, price, channel, url, dateTime, extra
 FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY dateTime DESC) AS rank_number
       FROM bid)
 WHERE rank_number <= 1",
    },
    Query {
        name: "q19",
        title: "top 10 bids per auction (Top-N with row numbers)",
        sql: "SELECT * FROM
(SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bid)
WHERE rank_number <= 10",
    },
    Query {
        name: "q20",
        title: "expand bid with auction (filtered join)",
        sql: "SELECT
    auction, bidder, price, channel, url, B.dateTime, B.extra,
    itemName, description, initialBid, reserve, A.dateTime, expires, seller, category, A.extra
FROM
    bid AS B INNER JOIN auction AS A on B.auction = A.id
WHERE A.category = 10",
    },
    Query {
        name: "q21",
        title: "add channel id (CASE, REGEXP_EXTRACT)",
        sql: "SELECT
    auction, bidder, price, channel,
    CASE
        WHEN lower(channel) = 'apple' THEN '0'
        WHEN lower(channel) = 'google' THEN '1'
        WHEN lower(channel) = 'facebook' THEN '2'
        WHEN lower(channel) = 'baidu' THEN '3'
        ELSE REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)
        END
    AS channel_id FROM bid
    where REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2) is not null or
          lower(channel) in ('apple', 'google', 'facebook', 'baidu')",
    },
    Query {
        name: "q22",
        title: "get URL directories (SPLIT_INDEX)",
        sql: "SELECT
    auction, bidder, price, channel,
    SPLIT_INDEX(url, '/', 3) as dir1,
    SPLIT_INDEX(url, '/', 4) as dir2,
    SPLIT_INDEX(url, '/', 5) as dir3 FROM bid",
    },
];

/// Queries of the suite Weir does not run yet, with the reason.
pub const NOT_RUN: &[(&str, &str)] = &[
    (
        "q6",
        "OVER (PARTITION BY seller ROWS 10 PRECEDING) over a join's update stream; Flink cannot run it either",
    ),
    ("q14", "calls a Java user-defined function (count_char)"),
];

/// The query named `name`.
pub fn query(name: &str) -> Option<&'static Query> {
    QUERIES.iter().find(|q| q.name == name)
}
