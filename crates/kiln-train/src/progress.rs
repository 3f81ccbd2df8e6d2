//! Progress per epoch: a bar (samples/s, running loss, ETA) when stdout is a terminal, plain
//! log lines otherwise.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub struct EpochProgress {
    bar: Option<ProgressBar>,
}

impl EpochProgress {
    pub fn new(epoch: usize, epochs: usize, samples: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stdout().is_terminal()).then(|| {
            let bar = ProgressBar::new(samples);
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "epoch {epoch}/{epochs} {{bar:30}} {{pos}}/{{len}} {{per_sec}} loss {{msg}} ETA {{eta}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        EpochProgress { bar }
    }

    pub fn advance(&self, samples: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(samples);
        }
    }

    pub fn loss(&self, loss: f64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{loss:.4}"));
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
