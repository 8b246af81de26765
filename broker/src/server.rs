//! The Kafka protocol over TCP: one task per connection, its requests
//! answered in order, as Kafka does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::log::{code, Appended, BatchHeader, MAX_BATCH_BYTES};
use crate::{next_producer_id, Committed, State};

/// The largest request read (a produce of many batches).
const MAX_REQUEST_BYTES: usize = 128 << 20;
/// The largest request read before a connection has authenticated, when
/// the broker asks for SASL: a stranger cannot make it hold 128 MiB.
const MAX_UNAUTHENTICATED_BYTES: usize = 64 << 10;
/// The longest a fetch waits for data, whatever the client asks.
const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);

/// The versions served of each API.
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// What a connection has said about who it is.
#[derive(Default)]
struct Session {
    /// The mechanism agreed in `SaslHandshake`.
    mechanism: Option<String>,
    /// The user it authenticated as; `None` before (or without SASL).
    user: Option<String>,
    /// Close after answering (a failed authentication, as Kafka does).
    close: bool,
}

fn supported(key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|(k, min, max)| *k == key && (*min..=*max).contains(&version))
}

pub(crate) async fn serve(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    let (state, stop) = (state.clone(), stop.clone());
                    tokio::spawn(async move {
                        if let Err(e) = connection(sock, state, stop).await {
                            tracing::debug!(%peer, error = %e, "connection closed");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.cancelled() => return,
        }
    }
}

async fn connection(
    sock: TcpStream,
    state: Arc<State>,
    stop: CancellationToken,
) -> Result<(), String> {
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    let (rd, mut wr) = sock.into_split();
    let mut rd = BufReader::with_capacity(256 << 10, rd);
    let mut session = Session::default();
    loop {
        let size = tokio::select! {
            s = rd.read_i32() => s.map_err(|e| e.to_string())?,
            _ = stop.cancelled() => return Ok(()),
        };
        let limit = if session.user.is_none() && !state.config.sasl_plain_users.is_empty() {
            MAX_UNAUTHENTICATED_BYTES
        } else {
            MAX_REQUEST_BYTES
        };
        if size < 4 || size as usize > limit {
            return Err(format!("a request of {size} bytes"));
        }
        let mut buf = vec![0u8; size as usize];
        rd.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        if let Some(out) = request(&state, &mut session, Bytes::from(buf)).await? {
            wr.write_all(&(out.len() as i32).to_be_bytes())
                .await
                .map_err(|e| e.to_string())?;
            wr.write_all(&out).await.map_err(|e| e.to_string())?;
        }
        if session.close {
            return Err("SASL authentication failed".into());
        }
    }
}

/// Decodes one request and encodes its answer; `Ok(None)` when the
/// request gets none (a produce with `acks=0`), `Err` to close the
/// connection on a request that cannot be understood.
async fn request(
    state: &State,
    session: &mut Session,
    mut buf: Bytes,
) -> Result<Option<BytesMut>, String> {
    let key = i16::from_be_bytes([buf[0], buf[1]]);
    let version = i16::from_be_bytes([buf[2], buf[3]]);
    let api = ApiKey::try_from(key).map_err(|_| format!("unknown API key {key}"))?;
    let sasl = !state.config.sasl_plain_users.is_empty();
    if sasl
        && session.user.is_none()
        && !matches!(
            api,
            ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
        )
    {
        // Kafka closes a connection that skips authentication.
        return Err(format!("{api:?} before SASL authentication"));
    }
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| format!("bad request header: {e}"))?;
    if !supported(api, version) {
        if api != ApiKey::ApiVersions {
            return Err(format!("{api:?} v{version} is not supported"));
        }
        // A client that asks with a newer ApiVersions than served gets the
        // list in v0, and asks again (KIP-511).
        let mut out = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, 0)
            .map_err(|e| e.to_string())?;
        api_versions(code::UNSUPPORTED_VERSION)
            .encode(&mut out, 0)
            .map_err(|e| e.to_string())?;
        return Ok(Some(out));
    }
    let req = RequestKind::decode(api, &mut buf, version)
        .map_err(|e| format!("bad {api:?} v{version} request: {e}"))?;
    let response = match req {
        RequestKind::SaslHandshake(r) => {
            ResponseKind::SaslHandshake(sasl_handshake(state, session, r))
        }
        RequestKind::SaslAuthenticate(r) => {
            ResponseKind::SaslAuthenticate(sasl_authenticate(state, session, r))
        }
        other => match dispatch(state, other, version).await {
            Some(r) => r,
            None => return Ok(None),
        },
    };
    let mut out = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(header.correlation_id)
        .encode(&mut out, api.response_header_version(version))
        .map_err(|e| e.to_string())?;
    response
        .encode(&mut out, version)
        .map_err(|e| format!("encoding {api:?} v{version}: {e}"))?;
    Ok(Some(out))
}

/// `SaslHandshake` v1: agrees on PLAIN, the one mechanism served.
fn sasl_handshake(
    state: &State,
    session: &mut Session,
    r: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let mut resp = SaslHandshakeResponse::default();
    if state.config.sasl_plain_users.is_empty() {
        resp.error_code = code::ILLEGAL_SASL_STATE;
        return resp;
    }
    resp.mechanisms = vec![s("PLAIN")];
    if r.mechanism.as_str() == "PLAIN" {
        session.mechanism = Some("PLAIN".into());
    } else {
        resp.error_code = code::UNSUPPORTED_SASL_MECHANISM;
    }
    resp
}

/// `SaslAuthenticate` with a PLAIN token (`authzid NUL user NUL password`,
/// RFC 4616). A refusal is answered, then the connection closed.
fn sasl_authenticate(
    state: &State,
    session: &mut Session,
    r: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let mut resp = SaslAuthenticateResponse::default();
    if session.mechanism.is_none() || session.user.is_some() {
        resp.error_code = code::ILLEGAL_SASL_STATE;
        resp.error_message = Some(s("SaslAuthenticate without a SaslHandshake first"));
        session.close = true;
        return resp;
    }
    let mut parts = r.auth_bytes.split(|b| *b == 0);
    let (_authzid, user, password) = (parts.next(), parts.next(), parts.next());
    let known = match (user, password, parts.next()) {
        (Some(u), Some(p), None) => std::str::from_utf8(u).ok().filter(|u| {
            state
                .config
                .sasl_plain_users
                .get(*u)
                .is_some_and(|want| constant_time_eq(want.as_bytes(), p))
        }),
        _ => None,
    };
    match known {
        Some(u) => session.user = Some(u.to_string()),
        None => {
            resp.error_code = code::SASL_AUTHENTICATION_FAILED;
            // Kafka's words: which of the two was wrong is not said.
            resp.error_message = Some(s("Authentication failed: Invalid username or password"));
            session.close = true;
        }
    }
    resp
}

/// Compares secrets in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn dispatch(state: &State, req: RequestKind, version: i16) -> Option<ResponseKind> {
    Some(match req {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(code::NONE)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata(state, r, version)),
        RequestKind::Produce(r) => {
            let answer = produce(state, r).map(ResponseKind::Produce);
            if !state.config.produce_delay.is_zero() {
                tokio::time::sleep(state.config.produce_delay).await;
            }
            return answer;
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch(state, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets(state, r)),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics(state, r)),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics(state, r)),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(init_producer_id(state, r)),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(find_coordinator(state, r, version))
        }
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(offset_commit(state, r)),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(offset_fetch(state, r)),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(state.groups.join(r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(state.groups.sync(r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(state.groups.heartbeat(r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(state.groups.leave(r, version)),
        other => {
            // `supported` lets only the APIs above through.
            tracing::warn!(request = ?other, "unhandled request");
            return None;
        }
    })
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn api_versions(error: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error;
    r.api_keys = SUPPORTED
        .iter()
        .map(|(k, min, max)| {
            let mut v = api_versions_response::ApiVersion::default();
            v.api_key = *k as i16;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect();
    r
}

fn broker_entry(state: &State) -> metadata_response::MetadataResponseBroker {
    let mut b = metadata_response::MetadataResponseBroker::default();
    b.node_id = BrokerId(0);
    b.host = s(state.host.clone());
    b.port = state.port;
    b
}

fn metadata(state: &State, r: MetadataRequest, version: i16) -> MetadataResponse {
    let mut resp = MetadataResponse::default();
    resp.brokers = vec![broker_entry(state)];
    resp.cluster_id = Some(s("weir-local"));
    resp.controller_id = BrokerId(0);
    resp.cluster_authorized_operations = i32::MIN;
    let names: Vec<(Option<String>, uuid::Uuid)> = match &r.topics {
        None => {
            let mut all: Vec<_> = state
                .topics
                .read()
                .expect("topics lock")
                .keys()
                .cloned()
                .collect();
            all.sort();
            all.into_iter()
                .map(|n| (Some(n), uuid::Uuid::nil()))
                .collect()
        }
        Some(ts) => ts
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect(),
    };
    // Before v4 a request could not say, and Kafka created the topic.
    let auto_create = version < 4 || r.allow_auto_topic_creation;
    for (name, id) in names {
        let mut t = metadata_response::MetadataResponseTopic::default();
        t.topic_authorized_operations = i32::MIN;
        let found = match &name {
            Some(n) => match state.topic(n) {
                Some(t) => Ok(t),
                None if auto_create => state
                    .create_topic(n, state.config.default_partitions, BTreeMap::new())
                    .or_else(|(c, m)| state.topic(n).ok_or((c, m))),
                None => Err((code::UNKNOWN_TOPIC_OR_PARTITION, String::new())),
            },
            None => {
                let topics = state.topics.read().expect("topics lock");
                match topics.iter().find(|(_, t)| t.id == id) {
                    Some((n, topic)) => {
                        t.name = Some(TopicName(s(n.clone())));
                        Ok(topic.clone())
                    }
                    None => Err((100, String::new())), // UNKNOWN_TOPIC_ID
                }
            }
        };
        if let Some(n) = &name {
            t.name = Some(TopicName(s(n.clone())));
        }
        t.topic_id = id;
        match found {
            Ok(topic) => {
                t.topic_id = topic.id;
                t.partitions = (0..topic.partitions.len() as i32)
                    .map(|p| {
                        let mut m = metadata_response::MetadataResponsePartition::default();
                        m.partition_index = p;
                        m.leader_id = BrokerId(0);
                        m.leader_epoch = 0;
                        m.replica_nodes = vec![BrokerId(0)];
                        m.isr_nodes = vec![BrokerId(0)];
                        m
                    })
                    .collect();
            }
            Err((c, _)) => t.error_code = c,
        }
        resp.topics.push(t);
    }
    resp
}

/// Partition `index` of `topic`, if both exist.
fn partition(
    topic: Option<&Arc<crate::Topic>>,
    index: i32,
) -> Option<&Arc<std::sync::Mutex<crate::PartitionLog>>> {
    let index = usize::try_from(index).ok()?;
    topic?.partitions.get(index)
}

fn produce(state: &State, r: ProduceRequest) -> Option<ProduceResponse> {
    let mut resp = ProduceResponse::default();
    let mut wrote = false;
    for td in r.topic_data {
        let topic = state.topic(&td.name.0);
        let mut tr = produce_response::TopicProduceResponse::default();
        tr.name = td.name.clone();
        for pd in td.partition_data {
            let mut pr = produce_response::PartitionProduceResponse::default();
            pr.index = pd.index;
            pr.base_offset = -1;
            pr.log_append_time_ms = -1;
            let log = partition(topic.as_ref(), pd.index);
            match (log, pd.records) {
                (None, _) => pr.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
                (Some(_), None) => {}
                (Some(log), Some(records)) => {
                    let mut log = log.lock().expect("partition lock");
                    match append_all(&mut log, &records, r.transactional_id.is_some()) {
                        Ok(base) => {
                            pr.base_offset = base;
                            wrote = true;
                        }
                        Err((c, m)) => {
                            pr.error_code = c;
                            pr.error_message = Some(s(m));
                        }
                    }
                    pr.log_start_offset = log.start_offset();
                }
            }
            tr.partition_responses.push(pr);
        }
        resp.responses.push(tr);
    }
    if wrote {
        state.appended.notify_waiters();
    }
    (r.acks != 0).then_some(resp)
}

/// Appends every batch in `records`; the base offset of the first.
fn append_all(
    log: &mut crate::PartitionLog,
    records: &[u8],
    transactional: bool,
) -> Result<i64, (i16, String)> {
    if transactional {
        return Err((
            code::INVALID_REQUEST,
            "this broker does not support transactions".into(),
        ));
    }
    let mut first = None;
    let mut rest = records;
    while !rest.is_empty() {
        let h = BatchHeader::parse(rest).map_err(|c| {
            (
                c,
                match c {
                    code::MESSAGE_TOO_LARGE => {
                        format!("a record batch is larger than {MAX_BATCH_BYTES} bytes")
                    }
                    code::UNSUPPORTED_FOR_MESSAGE_FORMAT => {
                        "only record batches of magic 2 (Kafka 0.11 and later) are accepted".into()
                    }
                    _ => "the record batch is malformed".into(),
                },
            )
        })?;
        if !h.crc_ok(rest) {
            return Err((
                code::CORRUPT_MESSAGE,
                "the record batch fails its CRC".into(),
            ));
        }
        if h.attributes & 0b11_0000 != 0 {
            return Err((
                code::INVALID_RECORD,
                "transactional and control batches are not supported by this broker".into(),
            ));
        }
        let base = match log.append(&h, rest) {
            Ok(Appended::New(b)) | Ok(Appended::Duplicate(b)) => b,
            Err(c) => {
                return Err((
                    c,
                    match c {
                        code::OUT_OF_ORDER_SEQUENCE_NUMBER => {
                            "the batch's sequence number is not the next one expected".into()
                        }
                        code::INVALID_PRODUCER_EPOCH => "the producer's epoch is stale".into(),
                        _ => "the log could not be written".into(),
                    },
                ))
            }
        };
        first.get_or_insert(base);
        rest = &rest[h.len..];
    }
    Ok(first.unwrap_or(log.next_offset()))
}

async fn fetch(state: &State, r: FetchRequest) -> FetchResponse {
    let wait = Duration::from_millis(r.max_wait_ms.max(0) as u64).min(MAX_FETCH_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = state.appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (resp, bytes) = fetch_once(state, &r);
        if bytes >= r.min_bytes.max(1) as usize
            || bytes > 0 && tokio::time::Instant::now() >= deadline
            || resp.error_code != code::NONE
        {
            return resp;
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(deadline) => return fetch_once(state, &r).0,
        }
    }
}

fn fetch_once(state: &State, r: &FetchRequest) -> (FetchResponse, usize) {
    let mut resp = FetchResponse::default();
    let mut left = if r.max_bytes > 0 {
        r.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut total = 0usize;
    for ft in &r.topics {
        let topic = state.topic(&ft.topic.0);
        let mut tr = fetch_response::FetchableTopicResponse::default();
        tr.topic = ft.topic.clone();
        tr.topic_id = ft.topic_id;
        for fp in &ft.partitions {
            let mut pr = fetch_response::PartitionData::default();
            pr.partition_index = fp.partition;
            pr.high_watermark = -1;
            pr.last_stable_offset = -1;
            pr.log_start_offset = -1;
            pr.preferred_read_replica = BrokerId(-1);
            pr.aborted_transactions = Some(vec![]);
            let log = partition(topic.as_ref(), fp.partition);
            match log {
                None => pr.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
                Some(log) => {
                    let log = log.lock().expect("partition lock");
                    pr.high_watermark = log.next_offset();
                    pr.last_stable_offset = log.next_offset();
                    pr.log_start_offset = log.start_offset();
                    if fp.fetch_offset > log.next_offset() || fp.fetch_offset < log.start_offset() {
                        pr.error_code = code::OFFSET_OUT_OF_RANGE;
                    } else if left > 0 {
                        let max = (fp.partition_max_bytes.max(0) as usize).min(left);
                        match log.read(fp.fetch_offset, max) {
                            Ok(Some(b)) => {
                                left = left.saturating_sub(b.len());
                                total += b.len();
                                pr.records = Some(b);
                            }
                            Ok(None) => pr.records = Some(Bytes::new()),
                            Err(e) => {
                                tracing::error!(error = %e, "could not read a partition log");
                                pr.error_code = code::KAFKA_STORAGE_ERROR;
                            }
                        }
                    } else {
                        pr.records = Some(Bytes::new());
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.responses.push(tr);
    }
    (resp, total)
}

fn list_offsets(state: &State, r: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    for lt in r.topics {
        let topic = state.topic(&lt.name.0);
        let mut tr = list_offsets_response::ListOffsetsTopicResponse::default();
        tr.name = lt.name.clone();
        for lp in lt.partitions {
            let mut pr = list_offsets_response::ListOffsetsPartitionResponse::default();
            pr.partition_index = lp.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            let log = partition(topic.as_ref(), lp.partition_index);
            match log {
                None => pr.error_code = code::UNKNOWN_TOPIC_OR_PARTITION,
                Some(log) => {
                    let log = log.lock().expect("partition lock");
                    match lp.timestamp {
                        -1 => pr.offset = log.next_offset(),
                        -2 | -4 => pr.offset = log.start_offset(),
                        -3 => {
                            if let Some((ts, offset)) = log.max_timestamp() {
                                pr.timestamp = ts;
                                pr.offset = offset;
                            }
                        }
                        ts => match log.batch_for_time(ts) {
                            Ok(Some((base, bytes))) => {
                                let (offset, at) = first_at_or_after(base, bytes, ts);
                                pr.offset = offset;
                                pr.timestamp = at;
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::error!(error = %e, "could not read a partition log");
                                pr.error_code = code::KAFKA_STORAGE_ERROR;
                            }
                        },
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

/// The first record at or after `ts` in a batch based at `base`; the
/// batch's own base when it cannot be decoded (a compressed batch).
fn first_at_or_after(base: i64, mut bytes: Bytes, ts: i64) -> (i64, i64) {
    match kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes) {
        Ok(set) => set
            .records
            .iter()
            .find(|r| r.timestamp >= ts)
            .map_or((base, ts), |r| (r.offset, r.timestamp)),
        Err(_) => (base, ts),
    }
}

fn create_topics(state: &State, r: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    for t in r.topics {
        let mut tr = create_topics_response::CreatableTopicResult::default();
        tr.name = t.name.clone();
        let partitions = if t.num_partitions == -1 {
            if t.assignments.is_empty() {
                state.config.default_partitions
            } else {
                t.assignments.len() as i32
            }
        } else {
            t.num_partitions
        };
        tr.num_partitions = partitions;
        tr.replication_factor = 1;
        tr.configs = Some(vec![]);
        let name = t.name.0.to_string();
        let result = if !(t.replication_factor == -1 || t.replication_factor == 1) {
            Err((
                38, // INVALID_REPLICATION_FACTOR
                format!(
                    "replication factor {} is more than the 1 broker there is",
                    t.replication_factor
                ),
            ))
        } else if r.validate_only {
            if state.topic(&name).is_some() {
                Err((
                    code::TOPIC_ALREADY_EXISTS,
                    format!("topic '{name}' already exists"),
                ))
            } else if !crate::legal_topic(&name) {
                Err((
                    code::INVALID_TOPIC_EXCEPTION,
                    format!("'{name}' is not a legal topic name"),
                ))
            } else {
                Ok(())
            }
        } else {
            let configs = t
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            state.create_topic(&name, partitions, configs).map(|topic| {
                tr.topic_id = topic.id;
            })
        };
        if let Err((c, m)) = result {
            tr.error_code = c;
            tr.error_message = Some(s(m));
        }
        resp.topics.push(tr);
    }
    resp
}

fn delete_topics(state: &State, r: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut resp = DeleteTopicsResponse::default();
    let names: Vec<(Option<String>, uuid::Uuid)> = if r.topics.is_empty() {
        r.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    } else {
        r.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    };
    for (name, id) in names {
        let name = name.or_else(|| {
            let topics = state.topics.read().expect("topics lock");
            topics
                .iter()
                .find(|(_, t)| t.id == id)
                .map(|(n, _)| n.clone())
        });
        let mut tr = delete_topics_response::DeletableTopicResult::default();
        tr.topic_id = id;
        match name {
            Some(n) => {
                tr.name = Some(TopicName(s(n.clone())));
                if let Err((c, m)) = state.delete_topic(&n) {
                    tr.error_code = c;
                    tr.error_message = Some(s(m));
                }
            }
            None => tr.error_code = 100, // UNKNOWN_TOPIC_ID
        }
        resp.responses.push(tr);
    }
    resp
}

fn init_producer_id(state: &State, r: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    if r.transactional_id.is_some() {
        // No coordinator for transactions: the client learns it at once.
        resp.error_code = 53; // TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        resp.producer_id = ProducerId(-1);
        resp.producer_epoch = -1;
        return resp;
    }
    if r.producer_id.0 >= 0 {
        // A producer bumping its epoch after an error keeps its id.
        resp.producer_id = r.producer_id;
        resp.producer_epoch = r.producer_epoch.saturating_add(1);
    } else {
        resp.producer_id = ProducerId(next_producer_id(state));
        resp.producer_epoch = 0;
    }
    resp
}

fn find_coordinator(
    state: &State,
    r: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    // This broker coordinates groups and, so that a transactional producer
    // learns at once that it cannot have a transactional id (from
    // InitProducerId), transactions too.
    let mut resp = FindCoordinatorResponse::default();
    if version < 4 {
        resp.node_id = BrokerId(0);
        resp.host = s(state.host.clone());
        resp.port = state.port;
        return resp;
    }
    let keys: Vec<StrBytes> = if r.coordinator_keys.is_empty() {
        vec![r.key.clone()]
    } else {
        r.coordinator_keys.clone()
    };
    resp.coordinators = keys
        .into_iter()
        .map(|k| {
            let mut c = find_coordinator_response::Coordinator::default();
            c.key = k;
            c.node_id = BrokerId(0);
            c.host = s(state.host.clone());
            c.port = state.port;
            c
        })
        .collect();
    resp
}

fn offset_commit(state: &State, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let mut resp = OffsetCommitResponse::default();
    {
        let mut offsets = state.offsets.lock().expect("offsets lock");
        let group = offsets.entry(r.group_id.0.to_string()).or_default();
        for t in &r.topics {
            let mut tr = offset_commit_response::OffsetCommitResponseTopic::default();
            tr.name = t.name.clone();
            for p in &t.partitions {
                group.insert(
                    format!("{}/{}", t.name.0, p.partition_index),
                    Committed {
                        offset: p.committed_offset,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    },
                );
                let mut pr = offset_commit_response::OffsetCommitResponsePartition::default();
                pr.partition_index = p.partition_index;
                tr.partitions.push(pr);
            }
            resp.topics.push(tr);
        }
    }
    state.save_offsets();
    resp
}

fn offset_fetch(state: &State, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    let offsets = state.offsets.lock().expect("offsets lock");
    let group = offsets.get(r.group_id.0.as_str());
    let wanted: Vec<(TopicName, Vec<i32>)> = match &r.topics {
        Some(ts) => ts
            .iter()
            .map(|t| (t.name.clone(), t.partition_indexes.clone()))
            .collect(),
        None => {
            // Every partition the group committed.
            let mut by: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for k in group.map(|g| g.keys()).into_iter().flatten() {
                if let Some((t, p)) = k.rsplit_once('/') {
                    if let Ok(p) = p.parse() {
                        by.entry(t.to_string()).or_default().push(p);
                    }
                }
            }
            by.into_iter()
                .map(|(t, ps)| (TopicName(s(t)), ps))
                .collect()
        }
    };
    for (name, parts) in wanted {
        let mut tr = offset_fetch_response::OffsetFetchResponseTopic::default();
        tr.name = name.clone();
        for p in parts {
            let mut pr = offset_fetch_response::OffsetFetchResponsePartition::default();
            pr.partition_index = p;
            pr.committed_leader_epoch = -1;
            match group.and_then(|g| g.get(&format!("{}/{p}", name.0))) {
                Some(c) => {
                    pr.committed_offset = c.offset;
                    pr.metadata = c.metadata.clone().map(s);
                }
                None => {
                    pr.committed_offset = -1;
                    pr.metadata = Some(s(""));
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}
