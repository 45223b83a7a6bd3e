//! The node-info actor: one per node process, in `troupe.node`. It tells the edge what the
//! node runs (`/cluster`) and answers the liveness pings of its peers.

use ractor::{pg, Actor, ActorProcessingErr, ActorRef};

use crate::groups;
use crate::protocol::node_info::{NodeInfo, NodeInfoMsg};

pub struct NodeInfoActor;

impl Actor for NodeInfoActor {
    type Msg = NodeInfoMsg;
    type State = NodeInfo;
    type Arguments = NodeInfo;

    async fn pre_start(
        &self,
        myself: ActorRef<NodeInfoMsg>,
        info: NodeInfo,
    ) -> Result<NodeInfo, ActorProcessingErr> {
        pg::join(groups::NODE.into(), vec![myself.get_cell()]);
        Ok(info)
    }

    async fn handle(
        &self,
        _myself: ActorRef<NodeInfoMsg>,
        msg: NodeInfoMsg,
        info: &mut NodeInfo,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeInfoMsg::Info(reply) => {
                let _ = reply.send(info.clone());
            }
            NodeInfoMsg::Metrics(reply) => {
                let _ = reply.send(crate::telemetry::snapshot(&info.name));
            }
        }
        Ok(())
    }
}
