//! report.svg: loss and accuracy curves (train and validation), the learning rate, and the
//! update:weight ratio of every layer (log10, with the ~1e-3 heuristic marked), drawn
//! with plotters and written atomically.

use crate::error::{write_atomically, Result, TrainError};
use crate::history::EpochRecord;
use plotters::prelude::*;
use std::path::Path;

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

type Series<'a> = Vec<(&'a str, Vec<(f64, f64)>, RGBColor)>;

fn panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    epochs: f64,
    series: Series,
) -> std::result::Result<(), String> {
    let (lo, hi) = range(
        series
            .iter()
            .flat_map(|(_, pts, _)| pts.iter().map(|p| p.1)),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..epochs, lo..hi)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, pts, color) in series {
        chart
            .draw_series(LineSeries::new(
                pts.into_iter().filter(|p| p.1.is_finite()),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

pub fn write_report(path: &Path, title: &str, history: &[EpochRecord]) -> Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 800)).into_drawing_area();
        let fail = |e: String| TrainError::file(path, format!("cannot draw the report: {e}"));
        root.fill(&WHITE).map_err(|e| fail(e.to_string()))?;
        let root = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| fail(e.to_string()))?;
        let panels = root.split_evenly((2, 2));
        let epochs = history.len().max(1) as f64;
        let at = |f: &dyn Fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
            history.iter().map(|r| (r.epoch as f64, f(r))).collect()
        };
        panel(
            &panels[0],
            "loss",
            epochs,
            vec![
                ("train", at(&|r| r.train_loss), PALETTE[0]),
                ("validation", at(&|r| r.val_loss), PALETTE[1]),
            ],
        )
        .map_err(fail)?;
        panel(
            &panels[1],
            "accuracy",
            epochs,
            vec![
                ("train", at(&|r| r.train_accuracy), PALETTE[0]),
                ("validation", at(&|r| r.val_accuracy), PALETTE[1]),
            ],
        )
        .map_err(fail)?;
        panel(
            &panels[2],
            "learning rate",
            epochs,
            vec![("lr", at(&|r| r.lr as f64), PALETTE[2])],
        )
        .map_err(fail)?;
        let layers: Vec<String> = history
            .last()
            .map(|r| r.layers.iter().map(|l| l.layer.clone()).collect())
            .unwrap_or_default();
        let mut series: Series = layers
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let pts = history
                    .iter()
                    .filter_map(|r| {
                        r.layers
                            .iter()
                            .find(|l| &l.layer == name)
                            .map(|l| (r.epoch as f64, l.update_ratio.log10()))
                    })
                    .collect();
                (name.as_str(), pts, PALETTE[i % PALETTE.len()])
            })
            .collect();
        series.push((
            "1e-3 heuristic",
            vec![(0.0, -3.0), (epochs, -3.0)],
            RGBColor(128, 128, 128),
        ));
        panel(&panels[3], "log10 update:weight ratio", epochs, series).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    write_atomically(path, svg.as_bytes())
}
