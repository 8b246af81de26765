//! Every Nexmark query Weir runs, on a small generated input, against a
//! reference computed here from the events with plain Rust collections
//! (not with Weir's engine).
//!
//! The engine's changelog is replayed into the table it describes (`+I`
//! and `+U` add a row, `-U` and `-D` remove one, which must be there), and
//! that table must equal the reference as a multiset. Input is unbounded:
//! a window is in the reference only if the final watermark (the minimum
//! over the tables read of their last event time, less the DDL's 4 s)
//! reached its end, as in the engine.
//!
//! The input crosses midnight, so the per-day queries see two days.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::util::display::{ArrayFormatter, FormatOptions};
#[path = "support/replay.rs"]
mod replay;

use weir_compute_pool::{run_in_memory, MemoryPoll};
use weir_nexmark::queries::{query, side_input_value, SIDE_INPUT_TABLE, TABLES};
use weir_nexmark::{Auction, Bid, Event, Generator, GeneratorConfig, Person};
use weir_sql_gateway::{analyze, Analysis, CatalogContext, Planner};

const EVENTS: u64 = 30_000;
const RATE: u64 = 1_000;
/// 2024-01-01 23:59:50 UTC: the 30 s of input cross midnight.
const BASE_MS: i64 = 1_704_153_590_000;
const WATERMARK_DELAY_MS: i64 = 4_000;

struct Input {
    /// The events as a consumer of the three topics polls them.
    polls: Vec<MemoryPoll>,
    persons: Vec<Person>,
    auctions: Vec<Auction>,
    bids: Vec<Bid>,
}

fn input() -> &'static Input {
    static INPUT: OnceLock<Input> = OnceLock::new();
    INPUT.get_or_init(|| {
        let events: Vec<Event> = Generator::new(GeneratorConfig {
            first_event: 0,
            events: EVENTS,
            events_per_second: RATE,
            base_time_ms: BASE_MS,
        })
        .collect();
        let side = replay::side_input_poll(BASE_MS);
        let polls = std::iter::once(side)
            .chain(replay::polls(&events, str::to_string))
            .collect();
        let (mut persons, mut auctions, mut bids) = (vec![], vec![], vec![]);
        for e in &events {
            match e {
                Event::Person(p) => persons.push(p.clone()),
                Event::Auction(a) => auctions.push(a.clone()),
                Event::Bid(b) => bids.push(b.clone()),
            }
        }
        Input {
            polls,
            persons,
            auctions,
            bids,
        }
    })
}

/// The statement's final watermark when it reads these tables' times.
fn watermark(tables: &[&[i64]]) -> i64 {
    tables
        .iter()
        .map(|t| t.iter().max().expect("rows") - WATERMARK_DELAY_MS)
        .min()
        .expect("tables")
}

/// Runs a query and replays its changelog into a multiset of rows.
fn engine(name: &str) -> BTreeMap<String, usize> {
    let planner = Planner::new();
    let ddl: Vec<&str> = TABLES.iter().copied().chain([SIDE_INPUT_TABLE]).collect();
    let ctx = CatalogContext::from_ddl(&planner, &ddl).expect("the DDL plans");
    let q = query(name).expect("a query");
    let Analysis::Streaming { plan, .. } =
        analyze(&planner, q.sql, &ctx).unwrap_or_else(|e| panic!("{name} plans: {e}"))
    else {
        panic!("{name} is a streaming query")
    };
    let out = run_in_memory(&plan, &input().polls).unwrap_or_else(|e| panic!("{name} runs: {e}"));
    let options = FormatOptions::default().with_null("null");
    let mut table: BTreeMap<String, usize> = BTreeMap::new();
    for c in &out.batches {
        // Timestamps as epoch milliseconds, which the reference uses.
        let columns: Vec<ArrayRef> = c
            .batch
            .columns()
            .iter()
            .map(|a| match a.data_type() {
                DataType::Timestamp(TimeUnit::Millisecond, _) => {
                    arrow::compute::cast(a, &DataType::Int64).expect("casts")
                }
                _ => a.clone(),
            })
            .collect();
        let fmts: Vec<ArrayFormatter> = columns
            .iter()
            .map(|a| ArrayFormatter::try_new(a.as_ref(), &options).expect("formats"))
            .collect();
        for r in 0..c.num_rows() {
            let row = fmts
                .iter()
                .map(|f| f.value(r).to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let kind = c.op(r) as u8;
            // 0 = +I, 1 = -U, 2 = +U, 3 = -D
            if kind == 0 || kind == 2 {
                *table.entry(row).or_default() += 1;
            } else {
                let n = table
                    .get_mut(&row)
                    .unwrap_or_else(|| panic!("{name}: retracts [{row}], which is not there"));
                *n -= 1;
                if *n == 0 {
                    table.remove(&row);
                }
            }
        }
    }
    table
}

fn multiset(rows: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(r).or_default() += 1;
    }
    m
}

fn check(name: &str, want: BTreeMap<String, usize>) {
    assert!(
        !want.is_empty(),
        "{name}: the reference is empty, a weak test"
    );
    let got = engine(name);
    if got != want {
        panic!(
            "{name}: {} rows, the reference has {}\n{}",
            got.values().sum::<usize>(),
            want.values().sum::<usize>(),
            replay::differences(&want, &got)
        );
    }
}

fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a time")
        .format("%Y-%m-%d")
        .to_string()
}

fn hour_minute(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a time")
        .format("%H:%M")
        .to_string()
}

/// `[start, end)` of the tumbling windows of `size` that have fired.
fn tumble(ts: i64, size: i64) -> (i64, i64) {
    let start = ts.div_euclid(size) * size;
    (start, start + size)
}

fn fired(end: i64, wm: i64) -> bool {
    end - 1 <= wm
}

fn bid_times() -> Vec<i64> {
    input().bids.iter().map(|b| b.date_time).collect()
}

#[test]
fn q0_passes_bids_through() {
    let want = input().bids.iter().map(|b| {
        format!(
            "{}, {}, {}, {}, {}",
            b.auction, b.bidder, b.price, b.date_time, b.extra
        )
    });
    check("q0", multiset(want));
}

#[test]
fn q1_converts_prices() {
    // 0.908 * price exactly, as DECIMAL(23, 3).
    let want = input().bids.iter().map(|b| {
        let milli = b.price * 908;
        format!(
            "{}, {}, {}.{:03}, {}, {}",
            b.auction,
            b.bidder,
            milli / 1000,
            milli % 1000,
            b.date_time,
            b.extra
        )
    });
    check("q1", multiset(want));
}

#[test]
fn q2_selects_some_auctions() {
    let want = input()
        .bids
        .iter()
        .filter(|b| b.auction % 123 == 0)
        .map(|b| format!("{}, {}", b.auction, b.price));
    check("q2", multiset(want));
}

#[test]
fn q3_joins_sellers_in_three_states() {
    let i = input();
    let mut want = vec![];
    for a in i.auctions.iter().filter(|a| a.category == 10) {
        for p in &i.persons {
            if a.seller == p.id && ["OR", "ID", "CA"].contains(&p.state.as_str()) {
                want.push(format!("{}, {}, {}, {}", p.name, p.city, p.state, a.id));
            }
        }
    }
    check("q3", multiset(want));
}

#[test]
fn q4_averages_winning_prices_per_category() {
    let i = input();
    let mut finals: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for a in &i.auctions {
        for b in &i.bids {
            if a.id == b.auction && a.date_time <= b.date_time && b.date_time <= a.expires {
                let f = finals.entry((a.id, a.category)).or_insert(i64::MIN);
                *f = (*f).max(b.price);
            }
        }
    }
    let mut per_category: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for ((_, category), price) in finals {
        let e = per_category.entry(category).or_default();
        e.0 += price;
        e.1 += 1;
    }
    // AVG of a BIGINT is a BIGINT in Flink (the quotient truncated).
    let want = per_category
        .into_iter()
        .map(|(c, (sum, n))| format!("{c}, {}", sum / n));
    check("q4", multiset(want));
}

#[test]
fn q5_finds_the_hottest_auctions_per_hopping_window() {
    let wm = watermark(&[&bid_times()]);
    let (size, slide) = (10_000, 2_000);
    let mut counts: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for b in &input().bids {
        let last = b.date_time.div_euclid(slide) * slide;
        for start in (0..size / slide).map(|k| last - k * slide) {
            if fired(start + size, wm) {
                *counts.entry((start, b.auction)).or_default() += 1;
            }
        }
    }
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for ((start, _), n) in &counts {
        let m = max.entry(*start).or_default();
        *m = (*m).max(*n);
    }
    let want = counts
        .iter()
        .filter(|((start, _), n)| **n >= max[start])
        .map(|((_, auction), n)| format!("{auction}, {n}"));
    check("q5", multiset(want));
}

#[test]
fn q7_finds_the_highest_bids_per_window() {
    let i = input();
    let wm = watermark(&[&bid_times()]);
    let mut max: BTreeMap<i64, i64> = BTreeMap::new();
    for b in &i.bids {
        let (_, end) = tumble(b.date_time, 10_000);
        if fired(end, wm) {
            let m = max.entry(end).or_insert(i64::MIN);
            *m = (*m).max(b.price);
        }
    }
    let mut want = vec![];
    for (end, price) in max {
        for b in &i.bids {
            if b.price == price && end - 10_000 <= b.date_time && b.date_time <= end {
                want.push(format!(
                    "{}, {}, {}, {}, {}",
                    b.auction, b.bidder, b.price, b.date_time, b.extra
                ));
            }
        }
    }
    check("q7", multiset(want));
}

#[test]
fn q8_finds_new_users_who_sell_in_the_same_window() {
    let i = input();
    let person_times: Vec<i64> = i.persons.iter().map(|p| p.date_time).collect();
    let auction_times: Vec<i64> = i.auctions.iter().map(|a| a.date_time).collect();
    let wm = watermark(&[&person_times, &auction_times]);
    let people: BTreeSet<(i64, String, i64)> = i
        .persons
        .iter()
        .map(|p| (p.id, p.name.clone(), tumble(p.date_time, 10_000)))
        .filter(|(_, _, (_, end))| fired(*end, wm))
        .map(|(id, name, (start, _))| (id, name, start))
        .collect();
    let sellers: BTreeSet<(i64, i64)> = i
        .auctions
        .iter()
        .map(|a| (a.seller, tumble(a.date_time, 10_000)))
        .filter(|(_, (_, end))| fired(*end, wm))
        .map(|(seller, (start, _))| (seller, start))
        .collect();
    let want = people
        .into_iter()
        .filter(|(id, _, start)| sellers.contains(&(*id, *start)))
        .map(|(id, name, start)| format!("{id}, {name}, {start}"));
    check("q8", multiset(want));
}

/// Every column of a bid, in table order.
#[test]
fn q11_counts_bids_per_user_session() {
    let i = input();
    let wm = watermark(&[&bid_times()]);
    let gap = 10_000;
    let mut times: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for b in &i.bids {
        times.entry(b.bidder).or_default().push(b.date_time);
    }
    let mut want = vec![];
    for (bidder, mut ts) in times {
        ts.sort_unstable();
        // A session runs until a gap longer than `gap` (a row exactly `gap`
        // after the last still joins, as Flink's windows merge on touch).
        let mut sessions: Vec<(i64, i64, usize)> = vec![];
        for t in ts {
            match sessions.last_mut() {
                Some((_, last, n)) if t <= *last + gap => {
                    *last = t;
                    *n += 1;
                }
                _ => sessions.push((t, t, 1)),
            }
        }
        for (start, last, n) in sessions {
            if fired(last + gap, wm) {
                want.push(format!("{bidder}, {n}, {start}, {}", last + gap));
            }
        }
    }
    check("q11", multiset(want));
}

/// Processing time is each poll's time here (the time of its first
/// event): a bid goes into the 10 s window of its poll's time, and a window
/// fires at the first poll at or after its last millisecond, before that
/// poll's records; a bid whose window fires at its own poll is late.
#[test]
fn q12_counts_bids_per_bidder_per_processing_time_window() {
    let size = 10_000;
    let polls = &input().polls;
    let mut counts: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for p in polls.iter().filter(|p| p.topic == "bid") {
        let (start, end) = tumble(p.at_ms, size);
        if end - 1 <= p.at_ms {
            continue;
        }
        for r in &p.records {
            let v: serde_json::Value =
                serde_json::from_slice(r.value.as_deref().expect("a value")).expect("JSON");
            *counts
                .entry((v["bidder"].as_i64().expect("a bidder"), start))
                .or_default() += 1;
        }
    }
    let last = polls.iter().map(|p| p.at_ms).max().expect("polls");
    let want = counts
        .into_iter()
        .filter(|((_, start), _)| start + size - 1 <= last)
        .map(|((bidder, start), n)| format!("{bidder}, {n}, {start}, {}", start + size));
    check("q12", multiset(want));
}

fn bid_columns(b: &Bid) -> String {
    format!(
        "{}, {}, {}, {}, {}, {}, {}",
        b.auction, b.bidder, b.price, b.channel, b.url, b.date_time, b.extra
    )
}

/// An auction's columns after its id, as q9 and q20 output them.
fn auction_columns(a: &Auction) -> String {
    format!(
        "{}, {}, {}, {}, {}, {}, {}, {}, {}",
        a.item_name,
        a.description,
        a.initial_bid,
        a.reserve,
        a.date_time,
        a.expires,
        a.seller,
        a.category,
        a.extra
    )
}

fn auction_and_bid(a: &Auction, b: &Bid) -> String {
    format!(
        "{}, {}, {}, {}, {}, {}, {}",
        a.id,
        auction_columns(a),
        b.auction,
        b.bidder,
        b.price,
        b.date_time,
        b.extra
    )
}

#[test]
fn q9_finds_each_auctions_winning_bid() {
    let i = input();
    let mut want = vec![];
    for a in &i.auctions {
        // Highest price, then earliest time, then first to arrive.
        let mut best: Option<&Bid> = None;
        for b in &i.bids {
            if a.id == b.auction && a.date_time <= b.date_time && b.date_time <= a.expires {
                let better = best.is_none_or(|w| (b.price, -b.date_time) > (w.price, -w.date_time));
                if better {
                    best = Some(b);
                }
            }
        }
        if let Some(b) = best {
            want.push(auction_and_bid(a, b));
        }
    }
    check("q9", multiset(want));
}

#[test]
fn q18_keeps_each_bidders_last_bid_per_auction() {
    let mut last: BTreeMap<(i64, i64), &Bid> = BTreeMap::new();
    for b in &input().bids {
        // Event time never goes back here, so the last to arrive is kept.
        last.insert((b.bidder, b.auction), b);
    }
    let want = last.values().map(|b| bid_columns(b));
    check("q18", multiset(want));
}

#[test]
fn q19_ranks_the_ten_highest_bids_per_auction() {
    let mut per_auction: BTreeMap<i64, Vec<&Bid>> = BTreeMap::new();
    for b in &input().bids {
        per_auction.entry(b.auction).or_default().push(b);
    }
    let mut want = vec![];
    for bids in per_auction.values_mut() {
        // Stable: equal prices keep their arrival order.
        bids.sort_by_key(|b| std::cmp::Reverse(b.price));
        for (rank, b) in bids.iter().take(10).enumerate() {
            want.push(format!("{}, {}", bid_columns(b), rank + 1));
        }
    }
    check("q19", multiset(want));
}

/// Counts of q15 and q16 over some bids: all, and per price rank.
fn rank_stats<'a>(bids: impl Iterator<Item = &'a Bid> + Clone) -> String {
    let ranks: [fn(i64) -> bool; 4] = [
        |_| true,
        |p| p < 10_000,
        |p| (10_000..1_000_000).contains(&p),
        |p| p >= 1_000_000,
    ];
    let mut cells = vec![];
    for r in ranks {
        cells.push(bids.clone().filter(|b| r(b.price)).count());
    }
    let columns: [fn(&Bid) -> i64; 2] = [|b| b.bidder, |b| b.auction];
    for column in columns {
        for r in ranks {
            let distinct: BTreeSet<i64> = bids.clone().filter(|b| r(b.price)).map(column).collect();
            cells.push(distinct.len());
        }
    }
    cells
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn q15_counts_bids_bidders_and_auctions_per_day() {
    let mut days: BTreeMap<String, Vec<&Bid>> = BTreeMap::new();
    for b in &input().bids {
        days.entry(day(b.date_time)).or_default().push(b);
    }
    assert_eq!(days.len(), 2, "the input crosses midnight");
    let want = days
        .iter()
        .map(|(d, bids)| format!("{d}, {}", rank_stats(bids.iter().copied())));
    check("q15", multiset(want));
}

#[test]
fn q16_counts_per_channel_and_day() {
    let mut groups: BTreeMap<(String, String), Vec<&Bid>> = BTreeMap::new();
    for b in &input().bids {
        groups
            .entry((b.channel.clone(), day(b.date_time)))
            .or_default()
            .push(b);
    }
    let want = groups.iter().map(|((channel, d), bids)| {
        let minute = bids.iter().map(|b| hour_minute(b.date_time)).max().unwrap();
        format!(
            "{channel}, {d}, {minute}, {}",
            rank_stats(bids.iter().copied())
        )
    });
    check("q16", multiset(want));
}

#[test]
fn q17_summarises_each_auction_per_day() {
    let mut groups: BTreeMap<(i64, String), Vec<i64>> = BTreeMap::new();
    for b in &input().bids {
        groups
            .entry((b.auction, day(b.date_time)))
            .or_default()
            .push(b.price);
    }
    let want = groups.iter().map(|((auction, d), prices)| {
        let n = prices.len() as i64;
        let count = |f: fn(&i64) -> bool| prices.iter().filter(|p| f(p)).count();
        let sum: i64 = prices.iter().sum();
        format!(
            "{auction}, {d}, {n}, {}, {}, {}, {}, {}, {}, {sum}",
            count(|p| *p < 10_000),
            count(|p| (10_000..1_000_000).contains(p)),
            count(|p| *p >= 1_000_000),
            prices.iter().min().unwrap(),
            prices.iter().max().unwrap(),
            sum / n,
        )
    });
    check("q17", multiset(want));
}

#[test]
fn q20_expands_bids_with_their_auction() {
    let i = input();
    let auctions: HashMap<i64, &Auction> = i.auctions.iter().map(|a| (a.id, a)).collect();
    let want = i.bids.iter().filter_map(|b| {
        let a = auctions.get(&b.auction).filter(|a| a.category == 10)?;
        Some(format!("{}, {}", bid_columns(b), auction_columns(a)))
    });
    check("q20", multiset(want));
}

#[test]
fn q21_adds_a_channel_id() {
    let want = input().bids.iter().filter_map(|b| {
        let from_url = b
            .url
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("channel_id="));
        let id = match b.channel.to_lowercase().as_str() {
            "apple" => Some("0"),
            "google" => Some("1"),
            "facebook" => Some("2"),
            "baidu" => Some("3"),
            _ => from_url,
        }?;
        Some(format!(
            "{}, {}, {}, {}, {id}",
            b.auction, b.bidder, b.price, b.channel
        ))
    });
    check("q21", multiset(want));
}

#[test]
fn q22_splits_urls_into_directories() {
    let want = input().bids.iter().map(|b| {
        let parts: Vec<&str> = b.url.split('/').collect();
        let at = |i: usize| parts.get(i).map_or("null".to_string(), |s| s.to_string());
        format!(
            "{}, {}, {}, {}, {}, {}, {}",
            b.auction,
            b.bidder,
            b.price,
            b.channel,
            at(3),
            at(4),
            at(5)
        )
    });
    check("q22", multiset(want));
}

#[test]
fn q10_adds_the_day_and_minute_it_would_be_partitioned_by() {
    let want = input().bids.iter().map(|b| {
        format!(
            "{}, {}, {}, {}, {}, {}, {}",
            b.auction,
            b.bidder,
            b.price,
            b.date_time,
            b.extra,
            day(b.date_time),
            hour_minute(b.date_time)
        )
    });
    check("q10", multiset(want));
}

#[test]
fn q13_joins_each_bid_with_its_side_input_row() {
    // Every auction id modulo 10,000 is a key of the side input, which is
    // read before the first bid.
    let want = input().bids.iter().map(|b| {
        format!(
            "{}, {}, {}, {}, {}",
            b.auction,
            b.bidder,
            b.price,
            b.date_time,
            side_input_value(b.auction % 10_000)
        )
    });
    check("q13", multiset(want));
}
