//! The latency distributions side by side, as an SVG: one panel per latency workload
//! and payload, one line per system, percentiles on a "nines" axis and latency on a
//! log axis, so medians and tails of systems a hundred times apart fit one picture.

use super::report::{curve, Report};
use super::workload::{Kind, PAYLOAD_BYTES};
use super::System;
use plotters::prelude::*;
use std::path::Path;

const SIZE_PIXELS: (u32, u32) = (1500, 1100);
/// The x axis in "nines": 0 is the fastest sample, 1 is 90 %, 2 is 99 %, 3 is 99.9 %.
const NINES: std::ops::Range<f64> = 0.0..3.0;

/// Writes the plot of `report` to `path`.
pub fn write(path: &Path, report: &Report) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, SIZE_PIXELS).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let root = root
        .titled(
            "herald and its peers: latency distributions (same run; durability in the table)",
            ("sans-serif", 26),
        )
        .map_err(plot_error)?;
    let panels = root.split_evenly((2, 2));
    let layout = [Kind::PublishLatency, Kind::EndToEnd]
        .into_iter()
        .flat_map(|k| PAYLOAD_BYTES.into_iter().map(move |p| (k, p)));
    for (panel, (kind, payload_bytes)) in panels.iter().zip(layout) {
        draw_panel(panel, report, kind, payload_bytes)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e}")
}

type Lines = Vec<(System, Vec<(f64, f64)>)>;

fn draw_panel(
    panel: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    report: &Report,
    kind: Kind,
    payload_bytes: usize,
) -> anyhow::Result<()> {
    let lines: Lines = report
        .systems
        .iter()
        .filter_map(|s| {
            let h = s.row(kind, payload_bytes)?.outcome.latency.as_ref()?;
            let points = curve(h)
                .into_iter()
                .map(|(percent, us)| (-(1.0 - percent / 100.0).log10(), us.max(0.1)))
                .collect();
            Some((s.system, points))
        })
        .collect();
    let (low, high) = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, us)| us))
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (low, high) = if lines.is_empty() {
        (1.0, 10.0)
    } else {
        (low / 1.5, high * 1.5)
    };
    let title = match kind {
        Kind::EndToEnd => format!("publish -> delivered, {payload_bytes} B, steady load"),
        _ => format!("durable publish, one at a time, {payload_bytes} B"),
    };
    let mut chart = ChartBuilder::on(panel)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(NINES, (low..high).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency, microseconds (log)")
        .x_labels(4) // at 0, 1, 2 and 3 nines
        .x_label_formatter(&|nines| percent_label(*nines))
        .y_label_formatter(&|us| {
            if *us < 1.0 {
                format!("{us:.1}")
            } else {
                format!("{us:.0}")
            }
        })
        .draw()
        .map_err(plot_error)?;
    for (system, points) in lines {
        let color = color(system);
        let width = if system == System::Herald { 4 } else { 2 };
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(width)))
            .map_err(plot_error)?
            .label(system.name())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(width))
            });
    }
    chart
        .configure_series_labels()
        .position(match kind {
            // Where the lines are not: publish panels have room under the servers'
            // lines at the tail, end-to-end panels above them at the start.
            Kind::EndToEnd => SeriesLabelPosition::UpperLeft,
            _ => SeriesLabelPosition::LowerRight,
        })
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// 0 nines is the fastest sample, 1 nine 90 %, 2 nines 99 %, 3 nines 99.9 %.
fn percent_label(nines: f64) -> String {
    if nines <= 0.0 {
        return "fastest".into();
    }
    let percent = 100.0 * (1.0 - 10f64.powf(-nines));
    let text = format!("{percent:.3}");
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

/// One fixed colour per system, the same in every panel.
fn color(system: System) -> RGBColor {
    match system {
        System::Herald => RGBColor(200, 30, 30),
        System::HeraldDisk => RGBColor(235, 140, 20),
        System::RedisAlways => RGBColor(30, 90, 200),
        System::RedisNo => RGBColor(110, 170, 240),
        System::Jetstream => RGBColor(40, 150, 60),
        System::Pmemlog => RGBColor(150, 80, 180),
        System::RawFlush => RGBColor(120, 120, 120),
        System::Fdatasync => RGBColor(90, 60, 30),
        System::Echo => RGBColor(0, 0, 0),
    }
}
