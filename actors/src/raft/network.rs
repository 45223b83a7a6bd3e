//! Raft's messages between the replicas of a group, over the cluster's own sessions: openraft's
//! `RaftNetworkFactory` on the sending side, and the frame format both sides share.
//!
//! Owns: the frame (a header naming the group and the two replicas, then the openraft
//! message), the deadlines, and the mapping of every failure to openraft's error kinds. Must not
//! touch: the Raft state (the replica actor answers frames) or any store.
//!
//! Over ractor_cluster rather than a connection of our own: the cookie, TLS, re-dialing and the
//! hung-peer keeper then cover Raft too, and a peer the keeper drops loses its group members,
//! so the next message fails at once as unreachable instead of waiting out a TCP timeout. The
//! target is resolved from its group at every call (no kept reference: ids repeat after a
//! restart), and the frame names the replica it is for, so a node that lost its disk and came
//! back as a new replica never answers for the old one.

use std::marker::PhantomData;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::RaftTypeConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::types::{ReplicaAddr, ReplicaId};
use crate::codec;
use crate::groups;
use crate::protocol::raft::{RaftFrame, RaftPeerMsg};
use crate::rpc::{self, CallError};

/// Largest append frame sent: half of ractor_cluster's 16 MiB inbound cap, past which the
/// whole session would be torn down (stack-facts). Bigger requests are split by openraft when
/// told the payload is too large.
pub const APPEND_FRAME_MAX: usize = 8 * 1024 * 1024;

/// How long openraft waits before trying an unreachable replica again. Short: a restarted node
/// should be caught up as soon as its members are back.
const RETRY_UNREACHABLE: Duration = Duration::from_millis(200);

/// What every frame starts with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrameHeader {
    pub group: String,
    /// The replica the frame is for.
    pub to: ReplicaId,
    pub from: ReplicaId,
}

/// Why a frame got no openraft answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerFailure<E> {
    /// openraft answered with an error.
    Raft(RaftError<ReplicaId, E>),
    /// The receiver would not take the frame: another group, another replica, undecodable.
    Refused(String),
}

/// The reply to a frame: the openraft answer, or why there is none.
pub type PeerReply<T, E> = Result<T, PeerFailure<E>>;

#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error("replica refused the frame: {0}")]
    Refused(String),
    #[error("{0}")]
    Codec(String),
}

/// A request frame.
pub fn encode_request<T: Serialize>(header: &FrameHeader, body: &T) -> Result<Vec<u8>, String> {
    codec::encode(&(header, body)).map_err(|e| e.to_string())
}

/// A request frame's header and body, if it is for `group`'s replica `me`.
pub fn decode_request<T: DeserializeOwned>(
    frame: &RaftFrame,
    group: &str,
    me: ReplicaId,
) -> Result<(FrameHeader, T), String> {
    let (header, body): (FrameHeader, T) =
        codec::decode(&frame.0).map_err(|e| format!("undecodable frame: {e}"))?;
    if header.group != group {
        return Err(format!("this is {group}, not {}", header.group));
    }
    if header.to != me {
        return Err(format!(
            "this is replica {me} of {group}, not {}: the node's replica was replaced",
            header.to
        ));
    }
    Ok((header, body))
}

/// A reply frame.
pub fn encode_reply<T: Serialize, E: Serialize>(reply: &PeerReply<T, E>) -> RaftFrame {
    // Encoding our own serde types cannot fail short of running out of memory.
    RaftFrame(codec::encode(reply).expect("encode a raft reply"))
}

/// Makes the connections openraft sends through, one per target replica.
#[derive(Debug, Clone)]
pub struct PeerNet {
    pub group: String,
    pub me: ReplicaId,
}

impl<C> RaftNetworkFactory<C> for PeerNet
where
    C: RaftTypeConfig<NodeId = ReplicaId, Node = ReplicaAddr>,
{
    type Network = PeerConn<C>;

    async fn new_client(&mut self, target: ReplicaId, node: &ReplicaAddr) -> PeerConn<C> {
        PeerConn {
            group: self.group.clone(),
            me: self.me,
            target,
            node: node.clone(),
            _config: PhantomData,
        }
    }
}

/// Messages to one replica. Connects to nothing: each message resolves its target anew.
pub struct PeerConn<C> {
    group: String,
    me: ReplicaId,
    target: ReplicaId,
    node: ReplicaAddr,
    _config: PhantomData<fn() -> C>,
}

type Failed<E> = RPCError<ReplicaId, ReplicaAddr, RaftError<ReplicaId, E>>;

impl<C> PeerConn<C> {
    fn header(&self) -> FrameHeader {
        FrameHeader {
            group: self.group.clone(),
            to: self.target,
            from: self.me,
        }
    }

    async fn send<Resp, E>(
        &self,
        action: RPCTypes,
        frame: Vec<u8>,
        timeout: Duration,
    ) -> Result<Resp, Failed<E>>
    where
        Resp: DeserializeOwned + Send + 'static,
        E: std::error::Error + DeserializeOwned,
    {
        let target_group = groups::raft_replica_on(&self.group, &self.node.node);
        let frame = RaftFrame(frame);
        let reply = rpc::call(
            &target_group,
            |port| match action {
                RPCTypes::AppendEntries => RaftPeerMsg::AppendEntries(frame, port),
                RPCTypes::Vote => RaftPeerMsg::Vote(frame, port),
                RPCTypes::InstallSnapshot => RaftPeerMsg::InstallSnapshot(frame, port),
            },
            timeout,
        )
        .await;
        let RaftFrame(bytes) = match reply {
            Ok(frame) => frame,
            Err(CallError::Timeout { .. }) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.me,
                    target: self.target,
                    timeout,
                }))
            }
            Err(e) => return Err(unreachable(TransportError::Call(e))),
        };
        match codec::decode::<PeerReply<Resp, E>>(&bytes) {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(PeerFailure::Raft(e))) => Err(RPCError::RemoteError(
                RemoteError::new_with_node(self.target, self.node.clone(), e),
            )),
            // A replica that is not the one addressed will not become it: back off.
            Ok(Err(PeerFailure::Refused(why))) => Err(unreachable(TransportError::Refused(why))),
            Err(e) => Err(RPCError::Network(NetworkError::new(
                &TransportError::Codec(format!(
                    "undecodable reply from replica {}: {e}",
                    self.target
                )),
            ))),
        }
    }
}

fn unreachable<E: std::error::Error>(e: TransportError) -> Failed<E> {
    RPCError::Unreachable(Unreachable::new(&e))
}

fn unencodable<E: std::error::Error>(e: String) -> Failed<E> {
    RPCError::Network(NetworkError::new(&TransportError::Codec(e)))
}

impl<C> RaftNetwork<C> for PeerConn<C>
where
    C: RaftTypeConfig<NodeId = ReplicaId, Node = ReplicaAddr>,
{
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<ReplicaId>, Failed<openraft::error::Infallible>> {
        let frame = encode_request(&self.header(), &rpc).map_err(unencodable)?;
        if frame.len() > APPEND_FRAME_MAX && rpc.entries.len() > 1 {
            // openraft sends fewer entries at once when told how many might fit.
            let fit = rpc.entries.len() * APPEND_FRAME_MAX / frame.len();
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit.max(1) as u64),
            ));
        }
        self.send(RPCTypes::AppendEntries, frame, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<ReplicaId>, Failed<InstallSnapshotError>> {
        let frame = encode_request(&self.header(), &rpc).map_err(unencodable)?;
        self.send(RPCTypes::InstallSnapshot, frame, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<ReplicaId>,
        option: RPCOption,
    ) -> Result<VoteResponse<ReplicaId>, Failed<openraft::error::Infallible>> {
        let frame = encode_request(&self.header(), &rpc).map_err(unencodable)?;
        self.send(RPCTypes::Vote, frame, option.hard_ttl()).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(RETRY_UNREACHABLE))
    }
}
