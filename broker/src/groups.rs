//! A small consumer-group coordinator (the classic protocol): members join,
//! the first becomes leader and assigns partitions, the others receive
//! their share; a member that joins or leaves starts a new generation,
//! which the others learn from their heartbeats.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::log::code;

/// How long a new group waits for more members before its first
/// generation (Kafka's `group.initial.rebalance.delay.ms`, shortened).
const INITIAL_DELAY: Duration = Duration::from_millis(300);
/// The longest a member waits in a join or a sync.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct Coordinator {
    groups: Mutex<HashMap<String, Arc<Group>>>,
}

#[derive(Default)]
struct Group {
    state: Mutex<GroupState>,
    changed: Notify,
}

#[derive(Default)]
struct GroupState {
    generation: i32,
    members: BTreeMap<String, Member>,
    rebalancing: bool,
    /// Members that joined the rebalance under way.
    joined: BTreeSet<String>,
    /// When the rebalance under way ends with whoever joined.
    deadline: Option<Instant>,
    /// Not before: lets members that start together join one generation.
    not_before: Option<Instant>,
    leader: String,
    protocol_type: String,
    protocol: Option<String>,
    assignments: Option<HashMap<String, Bytes>>,
    next_member: u64,
}

struct Member {
    protocols: Vec<(String, Bytes)>,
    session_timeout: Duration,
    last_seen: Instant,
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

impl GroupState {
    fn start_rebalance(&mut self, now: Instant, rebalance_timeout: Duration) {
        if !self.rebalancing {
            self.rebalancing = true;
            self.joined.clear();
            self.assignments = None;
            self.deadline = Some(now + rebalance_timeout.min(MAX_WAIT));
            self.not_before = Some(
                now + if self.members.len() <= 1 {
                    INITIAL_DELAY
                } else {
                    Duration::ZERO
                },
            );
        }
    }

    /// Ends the rebalance when every live member has joined (or time is up).
    fn try_complete(&mut self, now: Instant) -> bool {
        if !self.rebalancing {
            return false;
        }
        // Members gone quiet past their session timeout are dropped.
        self.members
            .retain(|id, m| self.joined.contains(id) || now < m.last_seen + m.session_timeout);
        let all = self.members.keys().all(|id| self.joined.contains(id));
        let early = self.not_before.is_some_and(|t| now < t);
        let late = self.deadline.is_some_and(|d| now >= d);
        if !(all && !early || late) || self.joined.is_empty() {
            return false;
        }
        let joined = std::mem::take(&mut self.joined);
        self.members.retain(|id, _| joined.contains(id));
        self.generation += 1;
        if !self.members.contains_key(&self.leader) {
            self.leader = self.members.keys().next().cloned().unwrap_or_default();
        }
        // The first of the leader's protocols that every member speaks.
        self.protocol = self.members.get(&self.leader).and_then(|l| {
            l.protocols.iter().map(|(n, _)| n.clone()).find(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
        });
        self.rebalancing = false;
        self.deadline = None;
        true
    }
}

impl Coordinator {
    fn group(&self, id: &str) -> Arc<Group> {
        self.groups
            .lock()
            .expect("groups lock")
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    pub async fn join(&self, r: JoinGroupRequest) -> JoinGroupResponse {
        let group = self.group(&r.group_id.0);
        let now = Instant::now();
        let member_id = {
            let mut g = group.state.lock().expect("group lock");
            if !g.members.is_empty()
                && !g.protocol_type.is_empty()
                && g.protocol_type != *r.protocol_type
            {
                let mut resp = JoinGroupResponse::default();
                resp.error_code = 23; // INCONSISTENT_GROUP_PROTOCOL
                resp.generation_id = -1;
                return resp;
            }
            g.protocol_type = r.protocol_type.to_string();
            let id = if r.member_id.is_empty() {
                g.next_member += 1;
                format!("member-{}-{}", g.next_member, uuid::Uuid::new_v4().simple())
            } else {
                r.member_id.to_string()
            };
            g.members.insert(
                id.clone(),
                Member {
                    protocols: r
                        .protocols
                        .iter()
                        .map(|p| (p.name.to_string(), p.metadata.clone()))
                        .collect(),
                    session_timeout: Duration::from_millis(r.session_timeout_ms.max(1000) as u64),
                    last_seen: now,
                },
            );
            let rebalance = Duration::from_millis(
                r.rebalance_timeout_ms.max(r.session_timeout_ms).max(1000) as u64,
            );
            g.start_rebalance(now, rebalance);
            g.joined.insert(id.clone());
            id
        };
        group.changed.notify_waiters();
        let give_up = now + MAX_WAIT;
        loop {
            let notified = group.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut g = group.state.lock().expect("group lock");
                let now = Instant::now();
                if g.try_complete(now) {
                    group.changed.notify_waiters();
                }
                if !g.rebalancing {
                    let mut resp = JoinGroupResponse::default();
                    if !g.members.contains_key(&member_id) {
                        resp.error_code = code::UNKNOWN_MEMBER_ID;
                        resp.generation_id = -1;
                        return resp;
                    }
                    resp.generation_id = g.generation;
                    resp.protocol_type = Some(s(g.protocol_type.clone()));
                    resp.protocol_name = g.protocol.clone().map(s);
                    resp.leader = s(g.leader.clone());
                    resp.member_id = s(member_id.clone());
                    if g.leader == member_id {
                        let protocol = g.protocol.clone().unwrap_or_default();
                        resp.members = g
                            .members
                            .iter()
                            .map(|(id, m)| {
                                let mut jm =
                                    join_group_response::JoinGroupResponseMember::default();
                                jm.member_id = s(id.clone());
                                jm.metadata = m
                                    .protocols
                                    .iter()
                                    .find(|(n, _)| *n == protocol)
                                    .map(|(_, b)| b.clone())
                                    .unwrap_or_default();
                                jm
                            })
                            .collect();
                    }
                    return resp;
                }
                if now >= give_up {
                    let mut resp = JoinGroupResponse::default();
                    resp.error_code = code::REBALANCE_IN_PROGRESS;
                    resp.generation_id = -1;
                    return resp;
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    pub async fn sync(&self, r: SyncGroupRequest) -> SyncGroupResponse {
        let group = self.group(&r.group_id.0);
        let member = r.member_id.to_string();
        let give_up = Instant::now() + MAX_WAIT;
        let mut first = true;
        loop {
            let notified = group.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut g = group.state.lock().expect("group lock");
                let mut resp = SyncGroupResponse::default();
                let Some(m) = g.members.get_mut(&member) else {
                    resp.error_code = code::UNKNOWN_MEMBER_ID;
                    return resp;
                };
                m.last_seen = Instant::now();
                if g.rebalancing {
                    resp.error_code = code::REBALANCE_IN_PROGRESS;
                    return resp;
                }
                if g.generation != r.generation_id {
                    resp.error_code = code::ILLEGAL_GENERATION;
                    return resp;
                }
                if first && g.leader == member {
                    g.assignments = Some(
                        r.assignments
                            .iter()
                            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                            .collect(),
                    );
                    group.changed.notify_waiters();
                }
                first = false;
                if let Some(a) = &g.assignments {
                    resp.protocol_type = Some(s(g.protocol_type.clone()));
                    resp.protocol_name = g.protocol.clone().map(s);
                    resp.assignment = a.get(&member).cloned().unwrap_or_default();
                    return resp;
                }
                if Instant::now() >= give_up {
                    resp.error_code = code::REBALANCE_IN_PROGRESS;
                    return resp;
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    pub fn heartbeat(&self, r: HeartbeatRequest) -> HeartbeatResponse {
        let group = self.group(&r.group_id.0);
        let mut resp = HeartbeatResponse::default();
        let mut g = group.state.lock().expect("group lock");
        let now = Instant::now();
        if g.try_complete(now) {
            group.changed.notify_waiters();
        }
        let rebalancing = g.rebalancing;
        let generation = g.generation;
        match g.members.get_mut(r.member_id.as_str()) {
            None => resp.error_code = code::UNKNOWN_MEMBER_ID,
            Some(m) => {
                m.last_seen = now;
                if rebalancing {
                    resp.error_code = code::REBALANCE_IN_PROGRESS;
                } else if generation != r.generation_id {
                    resp.error_code = code::ILLEGAL_GENERATION;
                }
            }
        }
        resp
    }

    pub fn leave(&self, r: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let group = self.group(&r.group_id.0);
        let mut resp = LeaveGroupResponse::default();
        let ids: Vec<String> = if r.members.is_empty() {
            vec![r.member_id.to_string()]
        } else {
            r.members.iter().map(|m| m.member_id.to_string()).collect()
        };
        {
            let mut g = group.state.lock().expect("group lock");
            for id in &ids {
                let mut mr = leave_group_response::MemberResponse::default();
                mr.member_id = s(id.clone());
                if g.members.remove(id).is_none() {
                    mr.error_code = code::UNKNOWN_MEMBER_ID;
                }
                g.joined.remove(id);
                // Before v3 a leave names one member and is answered as a whole.
                if version >= 3 {
                    resp.members.push(mr);
                } else {
                    resp.error_code = mr.error_code;
                }
            }
            if g.members.is_empty() {
                g.rebalancing = false;
                g.joined.clear();
                g.assignments = None;
            } else {
                let timeout = g
                    .members
                    .values()
                    .map(|m| m.session_timeout)
                    .max()
                    .unwrap_or(MAX_WAIT);
                g.start_rebalance(Instant::now(), timeout);
            }
        }
        group.changed.notify_waiters();
        resp
    }
}
