//! The load that runs beside a case's: `strom bench idle-fetch` on a thread of its own.
//!
//! Lifecycle: [`Beside::start`] spawns the thread and returns once every idle consumer is
//! connected and polling, so that connecting (and reading 1,000 end offsets) happens before the
//! suite takes the case's figures; [`Beside::stop`] ends the polling once the case's load is
//! done and returns what the consumers did. The thread has its own runtime, so the consumers'
//! fetches do not queue behind the case's load on the suite's thread (nor it behind them).
//! Dropping a `Beside` without stopping it stops the consumers too (the stop channel closes).

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::loads::BenchLine;
use crate::error::BenchError;
use crate::idle::{run_until, IdleOutcome};
use crate::progress::Counters;
use crate::BenchCommand;

pub struct Beside {
    stop: oneshot::Sender<()>,
    thread: JoinHandle<Result<IdleOutcome, BenchError>>,
    /// How to run it by hand.
    pub command: String,
}

impl Beside {
    /// Starts the `strom bench idle-fetch` line `words` against `address`.
    pub fn start(words: &[String], address: &str) -> Result<Beside, BenchError> {
        let BenchCommand::IdleFetch(args) = BenchLine::parse(words, address, None)?.command else {
            return Err(BenchError::InvalidArgument(format!(
                "only idle-fetch runs beside a suite case, not '{}'",
                words.join(" ")
            )));
        };
        let (ready, is_ready) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BenchError::io("cannot start the idle consumers' runtime"))?;
            let counters = Arc::new(Counters::default());
            let signal_ready = move || {
                let _ = ready.send(());
            };
            let until = async {
                let _ = stopped.await;
            };
            runtime.block_on(run_until(&args, counters, signal_ready, until))
        });
        if is_ready.recv().is_err() {
            // The thread ended before its consumers were polling: it has the error.
            let error = match thread.join().expect("the idle consumers do not panic") {
                Err(error) => error,
                Ok(_) => BenchError::Suite("the idle consumers stopped before polling".into()),
            };
            return Err(error);
        }
        Ok(Beside {
            stop,
            thread,
            command: BenchLine::command(words, address, None),
        })
    }

    /// Stops the consumers and returns what they did (or the error that ended them early).
    pub fn stop(self) -> Result<IdleOutcome, BenchError> {
        let _ = self.stop.send(());
        self.thread.join().expect("the idle consumers do not panic")
    }
}
