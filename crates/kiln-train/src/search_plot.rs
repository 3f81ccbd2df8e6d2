//! The search's scatter plot (SVG): validation accuracy against the learning rate and against
//! the weight decay, both on log axes, coarse and fine trials in two colours (diverged trials
//! are left out: they have no accuracy).

use crate::error::{write_atomically, Result, TrainError};
use crate::search::Trial;
use plotters::prelude::*;
use std::path::Path;

const COARSE: RGBColor = RGBColor(31, 119, 180);
const FINE: RGBColor = RGBColor(214, 39, 40);

/// A panel's name and the trial value on its x axis.
type Axis = (&'static str, fn(&Trial) -> f64);

fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (1e-6, 1.0);
    }
    (lo / 1.5, hi * 1.5)
}

pub fn write_search_plot(path: &Path, trials: &[Trial]) -> Result<()> {
    let ok: Vec<&Trial> = trials.iter().filter(|t| t.status == "ok").collect();
    let (acc_lo, acc_hi) = ok
        .iter()
        .map(|t| t.val_accuracy)
        .fold((1f64, 0f64), |(lo, hi), a| (lo.min(a), hi.max(a)));
    let (acc_lo, acc_hi) = if acc_lo <= acc_hi {
        ((acc_lo - 0.01).max(0.0), (acc_hi + 0.01).min(1.0))
    } else {
        (0.0, 1.0)
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 500)).into_drawing_area();
        let fail = |e: String| TrainError::file(path, format!("cannot draw the plot: {e}"));
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let panels = root.split_evenly((1, 2));
        let axes: [Axis; 2] = [
            ("learning rate", |t| t.lr as f64),
            ("weight decay", |t| t.weight_decay as f64),
        ];
        for (area, (name, x_of)) in panels.iter().zip(axes) {
            let (lo, hi) = log_range(ok.iter().map(|t| x_of(t)));
            let mut chart = ChartBuilder::on(area)
                .caption(format!("validation accuracy vs {name}"), ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d((lo..hi).log_scale(), acc_lo..acc_hi)
                .map_err(|e| fail(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc(format!("{name} (log scale)"))
                .y_desc("validation accuracy")
                .x_label_formatter(&|v| format!("{v:.0e}"))
                .draw()
                .map_err(|e| fail(e.to_string()))?;
            for (stage, color) in [("coarse", COARSE), ("fine", FINE)] {
                chart
                    .draw_series(
                        ok.iter()
                            .filter(|t| t.stage == stage)
                            .map(|t| Circle::new((x_of(t), t.val_accuracy), 4, color.filled())),
                    )
                    .map_err(|e| fail(e.to_string()))?
                    .label(format!("{stage} trials"))
                    .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
            }
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| fail(e.to_string()))?;
        }
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    write_atomically(path, svg.as_bytes())
}
