//! Progress bars (indicatif) on stderr while the demo runs: seeding, the simulated hour, the
//! drain. Hidden when stdout is not a terminal (piped into a file, CI) or with `--quiet`, so the
//! report is all a pipe gets.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn new(visible: bool) -> Self {
        Progress {
            multi: visible.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// A bar of `length` steps, labelled `prefix`, with a `{msg}` the caller updates.
    pub fn bar(&self, prefix: &'static str, length: u64) -> Bar {
        let Some(multi) = &self.multi else {
            return Bar(ProgressBar::hidden());
        };
        let bar = multi.add(ProgressBar::new(length));
        let style = ProgressStyle::with_template(
            "{prefix:>10.bold} [{bar:30.cyan/blue}] {pos:>5}/{len:<5} {elapsed:>4} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(prefix);
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(bar)
    }
}

/// One bar; a no-op when progress is hidden.
pub struct Bar(ProgressBar);

impl Bar {
    pub fn set_length(&self, n: u64) {
        self.0.set_length(n);
    }

    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    pub fn set_position(&self, n: u64) {
        self.0.set_position(n);
    }

    pub fn set_message(&self, msg: String) {
        self.0.set_message(msg);
    }

    pub fn finish(&self) {
        self.0.finish();
    }
}
