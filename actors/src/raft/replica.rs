//! One replica of a Raft group on this node: the actor that runs openraft over the group's
//! stores, answers its peers' Raft messages, and forms the group and keeps its voters.
//!
//! Owns: the `Raft` handle (published in a [`RaftSlot`] for the service on this node), the
//! replica's two process groups, the hellos by which replicas find each other, the one-time
//! formation, and the membership changes the leader makes. Must not touch: any service's rules
//! or the stores' insides (it only receives them opened), and it never removes a voter for
//! being down: that would lower the group's tolerance of the next failure.
//!
//! Formation: every replica says hello to the group's members. Once a replica has heard from
//! as many nodes as the group should have replicas and none of them is initialized, the one on
//! the smallest node name initializes the group with itself alone; every replica sees the same
//! names, so exactly one does (openraft #1031: two initializers split the group). As leader it
//! then adds the others as learners, which catch up from the log or a snapshot, and makes them
//! voters. A node that comes back with a new replica id (its disk was lost) is swapped in for
//! its old one the same way; a replica that merely restarted keeps its id and is not re-added.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::RaftError;
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{Membership, Raft, RaftTypeConfig, ServerState};
use ractor::{pg, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::network::{decode_request, encode_reply, PeerFailure, PeerNet, PeerReply};
use super::types::{GroupConfig, ReplicaAddr, ReplicaId};
use crate::codec;
use crate::groups;
use crate::protocol::raft::{RaftFrame, RaftPeerMsg};
use crate::rpc;
use crate::store::Store;

/// Where a running replica publishes its `Raft` handle for the service on its node (`None`
/// while it is not running). A watch, so the service sees each new incarnation.
pub type RaftSlot<C> = Arc<watch::Sender<Option<Raft<C>>>>;

/// A new slot, empty.
pub fn raft_slot<C: RaftTypeConfig>() -> RaftSlot<C> {
    Arc::new(watch::channel(None).0)
}

/// How often a replica says hello while the group is forming, and once it is formed.
const HELLO_FORMING: Duration = Duration::from_millis(250);
const HELLO_FORMED: Duration = Duration::from_secs(2);
/// Deadline of one hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a learner may take to catch up before the leader tries again later.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);
/// How long a stopped replica waits for openraft's tasks to let go of its store, so that a
/// restart never opens the file while an old instance still holds it.
const RELEASE_LIMIT: Duration = Duration::from_secs(5);

/// What a replica tells the others about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub group: String,
    pub replica: ReplicaId,
    pub node: String,
    /// Whether its log holds a membership: it is part of a formed group.
    pub initialized: bool,
}

/// The group's stores, opened: what a replica runs on.
pub struct Opened<LS, SM> {
    /// This replica's id, kept in the group's file.
    pub replica: ReplicaId,
    pub log: LS,
    pub state_machine: SM,
    /// The file both live in; the replica waits for it to be released when it stops.
    pub store: Arc<Store>,
}

type Open<LS, SM> = Box<dyn FnOnce() -> Result<Opened<LS, SM>, String> + Send>;

pub struct ReplicaArgs<C: RaftTypeConfig, LS, SM> {
    pub group: String,
    /// The troupe node this replica runs on.
    pub node: String,
    /// How many replicas the group should have.
    pub replicas: usize,
    pub config: Arc<openraft::Config>,
    /// Opens the stores; called in `pre_start`, so a restart reopens them.
    pub open: Open<LS, SM>,
    pub slot: RaftSlot<C>,
}

/// The types a replica runs on, as a marker (the actor itself holds nothing).
type Marker<C, LS, SM> = PhantomData<fn() -> (C, LS, SM)>;

pub struct ReplicaActor<C, LS, SM> {
    _types: Marker<C, LS, SM>,
}

impl<C, LS, SM> Default for ReplicaActor<C, LS, SM> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

pub struct ReplicaState<C: RaftTypeConfig> {
    group: String,
    node: String,
    me: ReplicaId,
    replicas: usize,
    raft: Raft<C>,
    /// The latest hello from each node's replica, this one's included.
    peers: BTreeMap<String, Hello>,
    /// A membership change in progress (leader only); one at a time.
    changing: Option<JoinHandle<()>>,
    slot: RaftSlot<C>,
    store: Arc<Store>,
}

impl<C: GroupConfig> ReplicaState<C> {
    fn hello(&self) -> Hello {
        Hello {
            group: self.group.clone(),
            replica: self.me,
            node: self.node.clone(),
            initialized: is_formed(&self.raft),
        }
    }

    fn heard(&mut self, hello: Hello) {
        if hello.group == self.group {
            self.peers.insert(hello.node.clone(), hello);
        }
    }
}

fn is_formed<C: RaftTypeConfig>(raft: &Raft<C>) -> bool {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .next()
        .is_some()
}

impl<C, LS, SM> Actor for ReplicaActor<C, LS, SM>
where
    C: GroupConfig,
    LS: RaftLogStorage<C>,
    SM: RaftStateMachine<C>,
{
    type Msg = RaftPeerMsg;
    type State = ReplicaState<C>;
    type Arguments = ReplicaArgs<C, LS, SM>;

    async fn pre_start(
        &self,
        myself: ActorRef<RaftPeerMsg>,
        args: ReplicaArgs<C, LS, SM>,
    ) -> Result<ReplicaState<C>, ActorProcessingErr> {
        let opened = (args.open)()?;
        let net = PeerNet {
            group: args.group.clone(),
            me: opened.replica,
        };
        let raft = Raft::new(
            opened.replica,
            args.config,
            net,
            opened.log,
            opened.state_machine,
        )
        .await?;
        args.slot.send_replace(Some(raft.clone()));
        let mut state = ReplicaState {
            group: args.group,
            node: args.node,
            me: opened.replica,
            replicas: args.replicas.max(1),
            raft,
            peers: BTreeMap::new(),
            changing: None,
            slot: args.slot,
            store: opened.store,
        };
        state.heard(state.hello());
        pg::join(groups::raft_replicas(&state.group), vec![myself.get_cell()]);
        pg::join(
            groups::raft_replica_on(&state.group, &state.node),
            vec![myself.get_cell()],
        );
        tracing::info!(group = %state.group, replica = state.me, "replica started");
        let _ = myself.cast(RaftPeerMsg::Tick);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<RaftPeerMsg>,
        msg: RaftPeerMsg,
        state: &mut ReplicaState<C>,
    ) -> Result<(), ActorProcessingErr> {
        // Raft messages are answered from tasks of their own: a snapshot being installed must
        // not hold a heartbeat or a vote behind it.
        let (raft, group, me) = (state.raft.clone(), state.group.clone(), state.me);
        match msg {
            RaftPeerMsg::AppendEntries(frame, port) => {
                answer(frame, port, group, me, move |req| async move {
                    raft.append_entries(req).await
                });
            }
            RaftPeerMsg::Vote(frame, port) => {
                answer(frame, port, group, me, move |req| async move {
                    raft.vote(req).await
                });
            }
            RaftPeerMsg::InstallSnapshot(frame, port) => {
                answer(frame, port, group, me, move |req| async move {
                    raft.install_snapshot(req).await
                });
            }
            RaftPeerMsg::Hello(frame, port) => {
                if let Ok(hello) = codec::decode::<Hello>(&frame.0) {
                    state.heard(hello);
                }
                let own = codec::encode(&state.hello()).expect("encode a hello");
                let _ = port.send(RaftFrame(own));
            }
            RaftPeerMsg::Heard(frame) => {
                if let Ok(hello) = codec::decode::<Hello>(&frame.0) {
                    state.heard(hello);
                }
            }
            RaftPeerMsg::Tick => {
                say_hello(&myself, state);
                form_or_change(state).await;
                let every = if is_formed(&state.raft) {
                    HELLO_FORMED
                } else {
                    HELLO_FORMING
                };
                myself.send_after(every, || RaftPeerMsg::Tick);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RaftPeerMsg>,
        state: &mut ReplicaState<C>,
    ) -> Result<(), ActorProcessingErr> {
        state.slot.send_replace(None);
        if let Some(change) = state.changing.take() {
            change.abort();
        }
        if let Err(e) = state.raft.shutdown().await {
            tracing::warn!(group = %state.group, error = %e, "raft did not shut down cleanly");
        }
        // openraft's shutdown joins only its core task; the state machine's and the replication
        // tasks may hold the stores a little longer (openraft #1357). A restart must not open
        // the file before they let go.
        let deadline = tokio::time::Instant::now() + RELEASE_LIMIT;
        while Arc::strong_count(&state.store) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!(group = %state.group, replica = state.me, "replica stopped");
        Ok(())
    }
}

/// Answers one Raft frame from a task of its own: decodes it (refusing a frame meant for
/// another group or replica), hands it to openraft, and sends back its answer.
fn answer<Req, Resp, E, F, Fut>(
    frame: RaftFrame,
    port: RpcReplyPort<RaftFrame>,
    group: String,
    me: ReplicaId,
    call: F,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize,
    E: Serialize,
    F: FnOnce(Req) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Resp, RaftError<ReplicaId, E>>> + Send,
{
    tokio::spawn(async move {
        let reply: PeerReply<Resp, E> = match decode_request(&frame, &group, me) {
            Ok((_, req)) => call(req).await.map_err(PeerFailure::Raft),
            Err(why) => Err(PeerFailure::Refused(why)),
        };
        let _ = port.send(encode_reply(&reply));
    });
}

/// Hello to every other replica of the group; their answers come back as `Heard`.
fn say_hello<C>(myself: &ActorRef<RaftPeerMsg>, state: &ReplicaState<C>)
where
    C: GroupConfig,
{
    let group = groups::raft_replicas(&state.group);
    let own = codec::encode(&state.hello()).expect("encode a hello");
    for member in pg::get_members(&group) {
        if member.get_id() == myself.get_id() {
            continue;
        }
        let (group, own, myself) = (group.clone(), own.clone(), myself.clone());
        tokio::spawn(async move {
            let frame = RaftFrame(own);
            let answer = rpc::call_member(
                &group,
                member,
                |port| RaftPeerMsg::Hello(frame, port),
                HELLO_TIMEOUT,
            )
            .await;
            if let Ok(theirs) = answer {
                let _ = myself.cast(RaftPeerMsg::Heard(theirs));
            }
        });
    }
}

/// Forms the group if this replica is the one to, or, as leader, starts the next membership
/// change the group needs.
async fn form_or_change<C>(state: &mut ReplicaState<C>)
where
    C: GroupConfig,
{
    if !is_formed(&state.raft) {
        if initializer(&state.peers, state.replicas) == Some(state.node.as_str()) {
            let me = BTreeMap::from([(
                state.me,
                ReplicaAddr {
                    node: state.node.clone(),
                },
            )]);
            match state.raft.initialize(me).await {
                Ok(()) => tracing::info!(group = %state.group, "formed the group"),
                Err(e) => tracing::warn!(group = %state.group, error = %e, "cannot form the group"),
            }
        }
        return;
    }
    let (is_leader, membership) = {
        let m = state.raft.metrics();
        let m = m.borrow();
        (
            m.state == ServerState::Leader,
            m.membership_config.membership().clone(),
        )
    };
    if !is_leader || state.changing.as_ref().is_some_and(|c| !c.is_finished()) {
        return;
    }
    let Some(change) = plan_voters(&membership, &state.peers, state.replicas) else {
        return;
    };
    let (raft, group) = (state.raft.clone(), state.group.clone());
    state.changing = Some(tokio::spawn(async move {
        for (id, addr) in &change.learners {
            let added =
                tokio::time::timeout(CATCH_UP_LIMIT, raft.add_learner(*id, addr.clone(), true))
                    .await;
            match added {
                Ok(Ok(_)) => {
                    tracing::info!(%group, replica = id, node = %addr.node, "learner caught up")
                }
                Ok(Err(e)) => {
                    tracing::warn!(%group, replica = id, error = %e, "cannot add learner");
                    return;
                }
                Err(_) => {
                    tracing::warn!(%group, replica = id, "learner did not catch up in time");
                    return;
                }
            }
        }
        match raft.change_membership(change.voters.clone(), false).await {
            Ok(_) => tracing::info!(%group, voters = ?change.voters, "voters changed"),
            Err(e) => tracing::warn!(%group, error = %e, "cannot change voters"),
        }
    }));
}

/// The node whose replica forms the group: the smallest name, once hellos from `replicas`
/// nodes have come and none of them belongs to a formed group.
pub fn initializer(peers: &BTreeMap<String, Hello>, replicas: usize) -> Option<&str> {
    if peers.len() < replicas || peers.values().any(|h| h.initialized) {
        return None;
    }
    peers.keys().next().map(String::as_str)
}

/// A membership change: learners to add first, then the voters to have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterChange {
    pub learners: Vec<(ReplicaId, ReplicaAddr)>,
    pub voters: BTreeSet<ReplicaId>,
}

/// The change the group needs, if any. The voters wanted are the replicas of the first
/// `replicas` nodes by name that have said hello. A voter stays unless its node now reports
/// another replica id (the node lost its disk): voters that are merely silent are kept.
pub fn plan_voters(
    membership: &Membership<ReplicaId, ReplicaAddr>,
    peers: &BTreeMap<String, Hello>,
    replicas: usize,
) -> Option<VoterChange> {
    let voters: BTreeSet<ReplicaId> = membership.voter_ids().collect();
    let wanted: Vec<&Hello> = peers.values().take(replicas).collect();
    let replaced = |id: &ReplicaId| {
        membership
            .get_node(id)
            .and_then(|addr| peers.get(&addr.node))
            .is_some_and(|hello| hello.replica != *id)
    };
    let mut target: BTreeSet<ReplicaId> = voters.iter().copied().filter(|v| !replaced(v)).collect();
    let mut learners = Vec::new();
    for hello in wanted {
        if target.insert(hello.replica) {
            learners.push((
                hello.replica,
                ReplicaAddr {
                    node: hello.node.clone(),
                },
            ));
        }
    }
    (target != voters).then_some(VoterChange {
        learners,
        voters: target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(node: &str, replica: ReplicaId, initialized: bool) -> (String, Hello) {
        (
            node.to_string(),
            Hello {
                group: "listing.0".into(),
                replica,
                node: node.into(),
                initialized,
            },
        )
    }

    fn membership(voters: &[(ReplicaId, &str)]) -> Membership<ReplicaId, ReplicaAddr> {
        let nodes: BTreeMap<ReplicaId, ReplicaAddr> = voters
            .iter()
            .map(|(id, n)| {
                (
                    *id,
                    ReplicaAddr {
                        node: n.to_string(),
                    },
                )
            })
            .collect();
        let ids: BTreeSet<ReplicaId> = nodes.keys().copied().collect();
        Membership::new(vec![ids], nodes)
    }

    #[test]
    fn the_smallest_node_forms_the_group_once_all_have_said_hello_and_none_is_formed() {
        let mut peers = BTreeMap::from([hello("n2", 20, false), hello("n3", 30, false)]);
        assert_eq!(initializer(&peers, 3), None, "only two of three heard");
        peers.extend([hello("n1", 10, false)]);
        assert_eq!(initializer(&peers, 3), Some("n1"));
        peers.extend([hello("n3", 30, true)]);
        assert_eq!(
            initializer(&peers, 3),
            None,
            "a formed group adds the rest itself"
        );
    }

    #[test]
    fn the_leader_adds_missing_replicas_as_learners_then_voters() {
        let peers = BTreeMap::from([
            hello("n1", 10, true),
            hello("n2", 20, false),
            hello("n3", 30, false),
        ]);
        let change = plan_voters(&membership(&[(10, "n1")]), &peers, 3).unwrap();
        assert_eq!(change.voters, BTreeSet::from([10, 20, 30]));
        assert_eq!(
            change.learners.iter().map(|l| l.0).collect::<Vec<_>>(),
            [20, 30]
        );
        let full = membership(&[(10, "n1"), (20, "n2"), (30, "n3")]);
        assert_eq!(plan_voters(&full, &peers, 3), None);
    }

    #[test]
    fn a_silent_voter_stays_and_a_node_with_a_new_replica_is_swapped_in() {
        let full = membership(&[(10, "n1"), (20, "n2"), (30, "n3")]);
        // n3 has not said hello (down): nothing changes.
        let peers = BTreeMap::from([hello("n1", 10, true), hello("n2", 20, true)]);
        assert_eq!(plan_voters(&full, &peers, 3), None);
        // n3 came back with an empty disk and a new id.
        let peers = BTreeMap::from([
            hello("n1", 10, true),
            hello("n2", 20, true),
            hello("n3", 31, false),
        ]);
        let change = plan_voters(&full, &peers, 3).unwrap();
        assert_eq!(change.voters, BTreeSet::from([10, 20, 31]));
        assert_eq!(change.learners, [(31, ReplicaAddr { node: "n3".into() })]);
    }

    #[test]
    fn only_the_first_nodes_by_name_are_wanted() {
        let peers = BTreeMap::from([
            hello("n1", 10, true),
            hello("n2", 20, true),
            hello("n3", 30, true),
            hello("n4", 40, false),
        ]);
        let full = membership(&[(10, "n1"), (20, "n2"), (30, "n3")]);
        assert_eq!(plan_voters(&full, &peers, 3), None);
    }
}
