//! openraft's network traits over [`Peers`]: each Raft RPC is one request on the shared
//! connection to the target, bounded by the time openraft allows it. Snapshots travel whole,
//! in one frame.

use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Timeout, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, RPCTypes, RaftNetwork, RaftNetworkFactory};

use crate::quorum::limits::SNAPSHOT_SEND_TIMEOUT_MS;
use crate::quorum::network::client::{CallError, Peers};
use crate::quorum::network::rpc::{Request, Response};
use crate::quorum::types::{NodeId, Snapshot, TypeConfig, Vote};

/// Makes a [`PeerNetwork`] per replication target; all share this node's connections.
pub struct NetworkFactory {
    node_id: NodeId,
    peers: Arc<Peers>,
}

impl NetworkFactory {
    pub fn new(node_id: NodeId, peers: Arc<Peers>) -> NetworkFactory {
        NetworkFactory { node_id, peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerNetwork {
        PeerNetwork {
            node_id: self.node_id,
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
        }
    }
}

/// Sends Raft RPCs to one target node.
pub struct PeerNetwork {
    node_id: NodeId,
    target: NodeId,
    addr: String,
    peers: Arc<Peers>,
}

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

fn unexpected(response: &Response) -> NetworkError {
    NetworkError::from(AnyError::error(format!(
        "an unexpected response: {response:?}"
    )))
}

impl PeerNetwork {
    async fn call<E: Error>(
        &self,
        request: Request,
        timeout: Duration,
        action: RPCTypes,
    ) -> Result<Response, RpcError<E>> {
        self.peers
            .call(&self.addr, request, timeout)
            .await
            .map_err(|error| match error {
                CallError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&error)),
                CallError::Timeout { .. } => RPCError::Timeout(Timeout {
                    action,
                    id: self.node_id,
                    target: self.target,
                    timeout,
                }),
                CallError::TooLarge(_) | CallError::Lost { .. } => {
                    RPCError::Network(NetworkError::new(&error))
                }
            })
    }

    fn remote<E: Error>(&self, error: RaftError<NodeId, E>) -> RpcError<E> {
        RPCError::RemoteError(RemoteError::new(self.target, error))
    }
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let request = Request::AppendEntries(rpc);
        match self
            .call(request, option.hard_ttl(), RPCTypes::AppendEntries)
            .await?
        {
            Response::AppendEntries(result) => result.map_err(|e| self.remote(e)),
            other => Err(RPCError::Network(unexpected(&other))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        let request = Request::InstallSnapshot(rpc);
        match self
            .call(request, option.hard_ttl(), RPCTypes::InstallSnapshot)
            .await?
        {
            Response::InstallSnapshot(result) => result.map_err(|e| self.remote(e)),
            other => Err(RPCError::Network(unexpected(&other))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        let request = Request::Vote(rpc);
        match self
            .call(request, option.hard_ttl(), RPCTypes::Vote)
            .await?
        {
            Response::Vote(result) => result.map_err(|e| self.remote(e)),
            other => Err(RPCError::Network(unexpected(&other))),
        }
    }

    /// Sends the whole snapshot in one frame (a metadata image is small next to the frame
    /// limit), giving up if openraft cancels the replication.
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let data = String::from_utf8(snapshot.snapshot.into_inner())
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))?;
        let request = Request::FullSnapshot {
            vote,
            meta: snapshot.meta,
            data,
        };
        let timeout = Duration::from_millis(SNAPSHOT_SEND_TIMEOUT_MS);
        let response = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            response = self.peers.call(&self.addr, request, timeout) => response,
        };
        match response {
            Ok(Response::FullSnapshot(result)) => result
                .map_err(|fatal| StreamingError::RemoteError(RemoteError::new(self.target, fatal))),
            Ok(other) => Err(StreamingError::Network(unexpected(&other))),
            Err(error @ CallError::Unreachable { .. }) => {
                Err(StreamingError::Unreachable(Unreachable::new(&error)))
            }
            Err(CallError::Timeout { .. }) => Err(StreamingError::Timeout(Timeout {
                action: RPCTypes::InstallSnapshot,
                id: self.node_id,
                target: self.target,
                timeout,
            })),
            Err(error) => Err(StreamingError::Network(NetworkError::new(&error))),
        }
    }
}
