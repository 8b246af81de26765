//! The Nexmark event stream: one person, three auctions and forty-six bids
//! in every fifty events, each event a pure function of its number and
//! the configuration, so that any range of the stream can be generated
//! alone and every run sees the same events.
//!
//! Ids are consecutive from 1000. A bid goes to a "hot" auction (the most
//! recent multiple of 100) half of the time and otherwise to one of the
//! last 100 auctions; its bidder is hot three times in four and otherwise
//! one of the last 1000 people; an auction's seller likewise. Prices are
//! log-uniform between 1.00 and 1,000,000.00 (in cents), so the three
//! price ranks of q15–q17 all occur. Event time advances by a fixed step
//! (`events_per_second`), so the stream is in order and the watermark of
//! the Flink DDL (`dateTime - 4 s`) never drops a record.

use serde::{Serialize, Serializer};

const FIRST_PERSON_ID: i64 = 1000;
const FIRST_AUCTION_ID: i64 = 1000;
const FIRST_CATEGORY_ID: i64 = 10;
const CATEGORIES: u64 = 5;
const PERSON_PROPORTION: u64 = 1;
const AUCTION_PROPORTION: u64 = 3;
const PROPORTION_DENOMINATOR: u64 = 50;
const ACTIVE_PEOPLE: u64 = 1000;
const IN_FLIGHT_AUCTIONS: u64 = 100;
/// Hot ids are the latest id rounded down to a multiple of this.
const HOT_GROUP: u64 = 100;

const FIRST_NAMES: &[&str] = &[
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: &[&str] = &[
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const CITIES: &[&str] = &[
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const STATES: &[&str] = &["AZ", "CA", "ID", "OR", "WA", "WY"];
const CHANNELS: &[&str] = &["Google", "Facebook", "Baidu", "Apple"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Number of the first event (to generate a slice of the stream).
    pub first_event: u64,
    /// Number one past the last event.
    pub events: u64,
    /// Events per second of event time.
    pub events_per_second: u64,
    /// Event time of event 0, in milliseconds since the epoch.
    pub base_time_ms: i64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            first_event: 0,
            events: 100_000,
            events_per_second: 10_000,
            // 2024-01-01T00:00:00Z
            base_time_ms: 1_704_067_200_000,
        }
    }
}

/// A new user of the auction site.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub email_address: String,
    pub credit_card: String,
    pub city: String,
    pub state: String,
    #[serde(serialize_with = "timestamp")]
    pub date_time: i64,
    pub extra: String,
}

/// An item put up for auction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Auction {
    pub id: i64,
    pub item_name: String,
    pub description: String,
    pub initial_bid: i64,
    pub reserve: i64,
    #[serde(serialize_with = "timestamp")]
    pub date_time: i64,
    #[serde(serialize_with = "timestamp")]
    pub expires: i64,
    pub seller: i64,
    pub category: i64,
    pub extra: String,
}

/// A bid on an auction.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bid {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: String,
    pub url: String,
    #[serde(serialize_with = "timestamp")]
    pub date_time: i64,
    pub extra: String,
}

/// One event of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Person(Person),
    Auction(Auction),
    Bid(Bid),
}

impl Event {
    /// The table (and topic) the event belongs to.
    pub fn table(&self) -> &'static str {
        match self {
            Event::Person(_) => "person",
            Event::Auction(_) => "auction",
            Event::Bid(_) => "bid",
        }
    }

    /// Event time in milliseconds since the epoch.
    pub fn timestamp_ms(&self) -> i64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }

    /// The event as the JSON value of a Kafka record of its table.
    pub fn to_json(&self) -> Vec<u8> {
        match self {
            Event::Person(p) => serde_json::to_vec(p),
            Event::Auction(a) => serde_json::to_vec(a),
            Event::Bid(b) => serde_json::to_vec(b),
        }
        .expect("events serialize")
    }
}

/// `yyyy-MM-dd HH:mm:ss.SSS` in UTC, the JSON form of `TIMESTAMP(3)`.
fn timestamp<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    s.collect_str(&format_args!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    ))
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01),
/// after Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The events of a configuration, in order.
#[derive(Debug, Clone)]
pub struct Generator {
    config: GeneratorConfig,
    next: u64,
}

impl Generator {
    pub fn new(config: GeneratorConfig) -> Self {
        let next = config.first_event;
        Generator { config, next }
    }

    /// Event number `n`.
    pub fn event(&self, n: u64) -> Event {
        let c = &self.config;
        let ts = c.base_time_ms + (n as u128 * 1000 / c.events_per_second.max(1) as u128) as i64;
        let mut rng = Rng::new(n);
        let offset = n % PROPORTION_DENOMINATOR;
        if offset < PERSON_PROPORTION {
            Event::Person(person(last_person(n), ts, &mut rng))
        } else if offset < PERSON_PROPORTION + AUCTION_PROPORTION {
            Event::Auction(self.auction(n, ts, &mut rng))
        } else {
            Event::Bid(bid(n, ts, &mut rng))
        }
    }

    fn auction(&self, n: u64, ts: i64, rng: &mut Rng) -> Auction {
        let id = last_auction(n);
        let seller = hot_or_recent(rng, last_person(n), ACTIVE_PEOPLE, 4);
        let initial_bid = price(rng);
        // Auctions stay open about as long as it takes to open
        // IN_FLIGHT_AUCTIONS more of them.
        let events_per_auction = PROPORTION_DENOMINATOR / AUCTION_PROPORTION;
        let mean_ms = (IN_FLIGHT_AUCTIONS * events_per_auction * 1000
            / self.config.events_per_second.max(1))
        .max(1);
        Auction {
            id: FIRST_AUCTION_ID + id as i64,
            item_name: rng.word(20),
            description: rng.word(100),
            initial_bid,
            reserve: initial_bid + price(rng),
            date_time: ts,
            expires: ts + 1 + rng.below(2 * mean_ms) as i64,
            seller: FIRST_PERSON_ID + seller as i64,
            category: FIRST_CATEGORY_ID + rng.below(CATEGORIES) as i64,
            extra: rng.padding(100),
        }
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        (self.next < self.config.events).then(|| {
            self.next += 1;
            self.event(self.next - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.config.events.saturating_sub(self.next) as usize;
        (left, Some(left))
    }
}

fn person(id: u64, ts: i64, rng: &mut Rng) -> Person {
    let card: Vec<String> = (0..4)
        .map(|_| format!("{:04}", rng.below(10_000)))
        .collect();
    Person {
        id: FIRST_PERSON_ID + id as i64,
        name: format!("{} {}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES)),
        email_address: format!("{}@{}.com", rng.word(7), rng.word(5)),
        credit_card: card.join(" "),
        city: rng.pick(CITIES).to_string(),
        state: rng.pick(STATES).to_string(),
        date_time: ts,
        extra: rng.padding(40),
    }
}

fn bid(n: u64, ts: i64, rng: &mut Rng) -> Bid {
    let auction = hot_or_recent(rng, last_auction(n), IN_FLIGHT_AUCTIONS, 2);
    let bidder = hot_or_recent(rng, last_person(n), ACTIVE_PEOPLE, 4);
    let path = format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        rng.word(5),
        rng.word(5),
        rng.word(5)
    );
    let (channel, url) = if rng.below(10) > 0 {
        (rng.pick(CHANNELS).to_string(), path)
    } else {
        let id = rng.below(1000);
        (format!("channel-{id}"), format!("{path}&channel_id={id}"))
    };
    Bid {
        auction: FIRST_AUCTION_ID + auction as i64,
        bidder: FIRST_PERSON_ID + bidder as i64,
        price: price(rng),
        channel,
        url,
        date_time: ts,
        extra: rng.padding(20),
    }
}

/// A hot id (`latest` rounded down to a multiple of [`HOT_GROUP`]) in
/// `odds - 1` draws out of `odds`, else one of the `recent` ids before
/// `latest` or `latest` itself.
fn hot_or_recent(rng: &mut Rng, latest: u64, recent: u64, odds: u64) -> u64 {
    if rng.below(odds) > 0 {
        latest / HOT_GROUP * HOT_GROUP
    } else {
        latest - rng.below(latest.min(recent) + 1)
    }
}

/// Log-uniform between 100 and 100,000,000 (cents).
fn price(rng: &mut Rng) -> i64 {
    (10f64.powf(rng.unit() * 6.0) * 100.0).round() as i64
}

/// Base-0 id of the latest person at or before event `n` (one per epoch,
/// its first event).
fn last_person(n: u64) -> u64 {
    n / PROPORTION_DENOMINATOR * PERSON_PROPORTION
}

/// Base-0 id of the latest auction at or before event `n` (0 before the
/// first).
fn last_auction(n: u64) -> u64 {
    let (epoch, offset) = (n / PROPORTION_DENOMINATOR, n % PROPORTION_DENOMINATOR);
    if offset < PERSON_PROPORTION {
        (epoch * AUCTION_PROPORTION).saturating_sub(1)
    } else {
        epoch * AUCTION_PROPORTION + (offset - PERSON_PROPORTION).min(AUCTION_PROPORTION - 1)
    }
}

/// SplitMix64, seeded by the event number.
struct Rng(u64);

impl Rng {
    fn new(n: u64) -> Self {
        Rng(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }

    /// A word of up to `max - 1` letters, as the `extra` column's padding.
    fn padding(&mut self, max: u64) -> String {
        let len = self.below(max) as usize;
        self.word(len)
    }

    fn word(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: u64) -> Vec<Event> {
        Generator::new(GeneratorConfig {
            events: n,
            ..Default::default()
        })
        .collect()
    }

    #[test]
    fn one_person_three_auctions_and_forty_six_bids_in_fifty_events() {
        let e = events(5000);
        let count = |t: &str| e.iter().filter(|e| e.table() == t).count();
        assert_eq!(
            (count("person"), count("auction"), count("bid")),
            (100, 300, 4600)
        );
    }

    #[test]
    fn ids_are_consecutive_and_bids_refer_to_existing_rows() {
        let e = events(5000);
        let (mut people, mut auctions) = (vec![], vec![]);
        for ev in &e {
            match ev {
                Event::Person(p) => people.push(p.id),
                Event::Auction(a) => {
                    assert!(people.contains(&a.seller), "seller {} unknown", a.seller);
                    assert!(a.expires > a.date_time);
                    auctions.push(a.id)
                }
                Event::Bid(b) => {
                    assert!(
                        auctions.contains(&b.auction),
                        "auction {} unknown",
                        b.auction
                    );
                    assert!(people.contains(&b.bidder), "bidder {} unknown", b.bidder);
                    assert!((100..=100_000_000).contains(&b.price));
                }
            }
        }
        assert_eq!(people, (1000..1100).collect::<Vec<_>>());
        assert_eq!(auctions, (1000..1300).collect::<Vec<_>>());
    }

    #[test]
    fn the_stream_is_a_function_of_the_event_number() {
        let all = events(300);
        let tail: Vec<Event> = Generator::new(GeneratorConfig {
            first_event: 200,
            events: 300,
            ..Default::default()
        })
        .collect();
        assert_eq!(tail, all[200..]);
        assert!(all
            .windows(2)
            .all(|w| w[0].timestamp_ms() <= w[1].timestamp_ms()));
    }

    #[test]
    fn json_has_the_flink_column_names_and_timestamp_format() {
        let Event::Bid(b) = Generator::new(GeneratorConfig::default()).event(7) else {
            panic!("event 7 is a bid")
        };
        let v: serde_json::Value = serde_json::from_slice(&Event::Bid(b).to_json()).unwrap();
        assert_eq!(v["dateTime"], "2024-01-01 00:00:00.000");
        assert!(v["auction"].is_i64() && v["channel"].is_string());
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
