//! The controller transport: many requests share one connection and are answered out of
//! order; a peer that stops answering or is gone costs a caller no more than its timeout; a
//! restarted peer is dialled again; an oversized frame closes the connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strom_metadata::quorum::limits::FRAME_BYTES_MAX;
use strom_metadata::quorum::network::rpc::{Request, Response};
use strom_metadata::quorum::network::{serve, CallError, Handler, Peers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

/// Answers heartbeats; broker 0 is held until released, so later requests overtake it.
struct Echo {
    release: Notify,
}

impl Handler for Echo {
    async fn handle(&self, request: Request, _from: SocketAddr) -> Response {
        match request {
            Request::BrokerHeartbeat { id, .. } => {
                if id == 0 {
                    self.release.notified().await;
                }
                Response::Heartbeat {
                    fenced: id % 2 == 1,
                }
            }
            other => Response::Failed(format!("unexpected {other:?}")),
        }
    }
}

fn heartbeat(id: i32) -> Request {
    Request::BrokerHeartbeat {
        id,
        incarnation: Uuid::nil(),
    }
}

async fn start_echo(listener: TcpListener) -> (tokio::task::JoinHandle<()>, Arc<Echo>) {
    let echo = Arc::new(Echo {
        release: Notify::new(),
    });
    (tokio::spawn(serve(listener, None, echo.clone())), echo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_share_a_connection_and_are_answered_out_of_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (server, echo) = start_echo(listener).await;
    let peers = Arc::new(Peers::default());
    let timeout = Duration::from_secs(10);
    let held = {
        let (peers, addr) = (peers.clone(), addr.clone());
        tokio::spawn(async move { peers.call(&addr, heartbeat(0), timeout).await })
    };
    // Fifty requests overtake the held one on the same connection.
    let calls = (1..=50).map(|id| {
        let (peers, addr) = (peers.clone(), addr.clone());
        tokio::spawn(async move { (id, peers.call(&addr, heartbeat(id), timeout).await) })
    });
    for call in calls {
        let (id, response) = call.await.unwrap();
        match response.unwrap() {
            Response::Heartbeat { fenced } => assert_eq!(fenced, id % 2 == 1),
            other => panic!("{other:?}"),
        }
    }
    assert!(!held.is_finished());
    echo.release.notify_one();
    assert!(matches!(
        held.await.unwrap().unwrap(),
        Response::Heartbeat { fenced: false }
    ));
    server.abort();
}

#[tokio::test]
async fn a_silent_peer_costs_only_the_timeout_and_a_missing_one_is_unreachable() {
    // Accepts connections but never reads or answers (like a paused process).
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let _holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    let peers = Peers::default();
    let started = Instant::now();
    let error = peers
        .call(&silent_addr, heartbeat(1), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Timeout { .. }), "{error:?}");
    assert!(
        !error.not_sent(),
        "a timed-out request may have been acted on"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // Once the connection has been silent long enough, the next call dials a new one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "the silent connection was never replaced"
        );
        let quick = Duration::from_millis(200);
        assert!(peers.call(&silent_addr, heartbeat(1), quick).await.is_err());
    }

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let error = peers
        .call(&closed_addr, heartbeat(1), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Unreachable { .. }), "{error:?}");
    assert!(error.not_sent());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_dialled_again() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (server, _echo) = start_echo(listener).await;
    let peers = Peers::default();
    let timeout = Duration::from_secs(2);
    assert!(peers
        .call(&addr.to_string(), heartbeat(1), timeout)
        .await
        .is_ok());
    server.abort();
    let _ = server.await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let (server, _echo) = start_echo(listener).await;
    // The first call may find the old connection broken; a later one redials.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match peers.call(&addr.to_string(), heartbeat(3), timeout).await {
            Ok(Response::Heartbeat { fenced: true }) => break,
            Ok(other) => panic!("{other:?}"),
            Err(error) => assert!(Instant::now() < deadline, "never reconnected: {error}"),
        }
    }
    server.abort();
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (server, _echo) = start_echo(listener).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let length = u32::try_from(FRAME_BYTES_MAX + 1).unwrap();
    stream.write_all(&length.to_be_bytes()).await.unwrap();
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
        .await
        .expect("the server closes the connection");
    assert_eq!(read.unwrap_or(0), 0, "closed without an answer");
    server.abort();
}
