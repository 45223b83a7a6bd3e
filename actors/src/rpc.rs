//! Calls across the cluster, always resolved at call time and always bounded in time.
//!
//! ractor_cluster never notices a hung peer and drops undecodable messages silently, so a call
//! without a deadline can wait forever. Every call here has one, and every way a call can fail
//! to reach a live member becomes [`CallError`], which the edge renders as 503.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{pg, ActorCell, ActorRef, Message, RpcReplyPort};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("no {group} actor is running in the cluster")]
    NoMember { group: String },
    #[error("{group} did not answer within {timeout:?}")]
    Timeout { group: String, timeout: Duration },
    #[error("the {group} actor went away during the call")]
    Gone { group: String },
}

static ROUND_ROBIN: AtomicUsize = AtomicUsize::new(0);

/// How much longer than the caller's deadline a reply port stays open (see `call_member`).
const REPLY_PORT_SLACK: Duration = Duration::from_secs(1);

/// One member of `group`: a local one when there is one (no network hop), else the next remote
/// one in turn.
pub fn pick_member(group: &str) -> Option<ActorCell> {
    let members = pg::get_members(&group.to_string());
    if let Some(local) = members.iter().find(|m| m.get_id().is_local()) {
        return Some(local.clone());
    }
    if members.is_empty() {
        return None;
    }
    let i = ROUND_ROBIN.fetch_add(1, Ordering::Relaxed) % members.len();
    Some(members[i].clone())
}

/// Calls a member of `group` and waits at most `timeout` for its reply.
pub async fn call<M, T, F>(group: &str, build: F, timeout: Duration) -> Result<T, CallError>
where
    M: Message,
    T: Send + 'static,
    F: FnOnce(RpcReplyPort<T>) -> M,
{
    let member = pick_member(group).ok_or_else(|| CallError::NoMember {
        group: group.to_string(),
    })?;
    call_member(group, member, build, timeout).await
}

/// Calls a given member (e.g. one node's info actor) with a deadline.
pub async fn call_member<M, T, F>(
    group: &str,
    member: ActorCell,
    build: F,
    timeout: Duration,
) -> Result<T, CallError>
where
    M: Message,
    T: Send + 'static,
    F: FnOnce(RpcReplyPort<T>) -> M,
{
    let actor: ActorRef<M> = member.into();
    let deadline = tokio::time::Instant::now() + timeout;
    // The outer timeout is the deadline; it also bounds the send, which a stuck session could
    // stall. The reply port itself lives a little longer: for a remote member ractor_cluster
    // bridges the reply through tasks that drop the port when the port's own timeout runs out,
    // which at the same instant as ours would show a slow answer as a lost actor.
    let outcome = tokio::time::timeout_at(
        deadline,
        actor.call(build, Some(timeout + REPLY_PORT_SLACK)),
    )
    .await;
    let timed_out = || CallError::Timeout {
        group: group.to_string(),
        timeout,
    };
    match outcome {
        Ok(Ok(CallResult::Success(reply))) => Ok(reply),
        Ok(Ok(CallResult::Timeout)) | Err(_) => Err(timed_out()),
        // A port dropped at or past the deadline is the deadline, whoever noticed it first.
        Ok(Ok(CallResult::SenderError)) | Ok(Err(_)) if tokio::time::Instant::now() >= deadline => {
            Err(timed_out())
        }
        Ok(Ok(CallResult::SenderError)) | Ok(Err(_)) => Err(CallError::Gone {
            group: group.to_string(),
        }),
    }
}

/// Sends a one-way message to a member of `group`.
pub fn cast<M: Message>(group: &str, msg: M) -> Result<(), CallError> {
    let member = pick_member(group).ok_or_else(|| CallError::NoMember {
        group: group.to_string(),
    })?;
    ActorRef::<M>::from(member)
        .cast(msg)
        .map_err(|_| CallError::Gone {
            group: group.to_string(),
        })
}
