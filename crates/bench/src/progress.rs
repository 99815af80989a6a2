//! The progress bar on stderr while a load runs, only when stderr is a terminal.
//!
//! The load's tasks bump [`Counters`] (two relaxed atomic adds per batch, not per record); a
//! thread of its own redraws the bar five times a second from them, so drawing never slows
//! the load down.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::Limit;

const REDRAW_INTERVAL: Duration = Duration::from_millis(200);

/// Records and payload bytes done so far.
#[derive(Debug, Default)]
pub struct Counters {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
}

impl Counters {
    pub fn add(&self, records: u64, bytes: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A running progress display (or none, when stderr is not a terminal).
pub struct Progress {
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    redraw: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts a bar labelled `label` for a load that ends at `limit` (`None`: unknown end).
    pub fn start(label: &str, limit: Option<Limit>) -> Progress {
        let enabled = std::io::stderr().is_terminal();
        Progress::start_with(label, limit, enabled)
    }

    pub fn start_with(label: &str, limit: Option<Limit>, enabled: bool) -> Progress {
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let redraw = enabled.then(|| {
            let bar = new_bar(label, limit);
            let counters = counters.clone();
            let stop = stop.clone();
            std::thread::spawn(move || redraw_until_stopped(bar, limit, &counters, &stop))
        });
        Progress {
            counters,
            stop,
            redraw,
        }
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Clears the bar.
    pub fn finish(mut self) {
        self.stop_redraw();
    }

    fn stop_redraw(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(redraw) = self.redraw.take() {
            let _ = redraw.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_redraw();
    }
}

fn new_bar(label: &str, limit: Option<Limit>) -> ProgressBar {
    let (length, template) = match limit {
        Some(Limit::Records(records)) => (records, "{prefix} [{bar:30}] {percent:>3}% {msg}"),
        Some(Limit::Time(time)) => (
            time.as_millis() as u64,
            "{prefix} [{bar:30}] {elapsed:>4} {msg}",
        ),
        None => (0, "{prefix} {spinner} {elapsed:>4} {msg}"),
    };
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_string());
    bar
}

fn redraw_until_stopped(
    bar: ProgressBar,
    limit: Option<Limit>,
    counters: &Counters,
    stop: &AtomicBool,
) {
    let started = Instant::now();
    let mut last = (started, 0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(REDRAW_INTERVAL);
        let now = Instant::now();
        let records = counters.records.load(Ordering::Relaxed);
        let bytes = counters.bytes.load(Ordering::Relaxed);
        let seconds = now.duration_since(last.0).as_secs_f64().max(1e-6);
        let records_per_s = (records - last.1) as f64 / seconds;
        let mb_per_s = (bytes - last.2) as f64 / seconds / 1e6;
        last = (now, records, bytes);
        match limit {
            Some(Limit::Records(_)) => bar.set_position(records),
            Some(Limit::Time(_)) => bar.set_position(started.elapsed().as_millis() as u64),
            None => bar.tick(),
        }
        bar.set_message(format!(
            "{} records, {} rec/s, {mb_per_s:.1} MB/s",
            crate::stats::human_count(records as f64),
            crate::stats::human_count(records_per_s)
        ));
    }
    bar.finish_and_clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_progress_counts_and_stops() {
        let progress = Progress::start_with("test", Some(Limit::Records(10)), false);
        progress.counters().add(3, 300);
        progress.counters().add(2, 200);
        assert_eq!(progress.counters().records.load(Ordering::Relaxed), 5);
        assert_eq!(progress.counters().bytes.load(Ordering::Relaxed), 500);
        progress.finish();
    }
}
