//! SVG charts for the reports, drawn with plotters into strings so that the
//! HTML page embeds them and stays a single self-contained file.

use plotters::coord::combinators::IntoLogRange;
use plotters::prelude::*;
use plotters::style::full_palette;

/// One line of a line chart.
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// How to scale the y axis.
#[derive(Clone, Copy)]
pub enum YAxis {
    /// From zero to the given maximum, labelled as a percentage of 1.0.
    Percent(f64),
    /// Logarithmic, between the given bounds.
    Log(f64, f64),
    /// Linear between the given bounds.
    Linear(f64, f64),
}

const WIDTH: u32 = 860;
const HEIGHT: u32 = 420;
/// The column right of the plot that holds the legend.
const LEGEND_WIDTH: u32 = 170;

/// How a legend entry is drawn.
#[derive(Clone, Copy)]
enum Mark {
    Line,
    Dashed,
    Block,
}

struct LegendEntry {
    name: String,
    color: RGBColor,
    mark: Mark,
}

/// The legend entries of line series: a solid or dashed line each.
fn line_entries(series: &[Series]) -> Vec<LegendEntry> {
    series
        .iter()
        .map(|s| LegendEntry {
            name: s.name.clone(),
            color: s.color,
            mark: if s.dashed { Mark::Dashed } else { Mark::Line },
        })
        .collect()
}

/// A legend in its own area, so that it never hides data.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[LegendEntry],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = ("sans-serif", 13).into_font().color(&BLACK);
    for (i, e) in entries.iter().enumerate() {
        let y = 48 + 20 * i as i32;
        let style = ShapeStyle::from(&e.color).stroke_width(2);
        match e.mark {
            Mark::Line => area.draw(&PathElement::new(vec![(6, y), (30, y)], style))?,
            Mark::Dashed => {
                area.draw(&PathElement::new(vec![(6, y), (13, y)], style))?;
                area.draw(&PathElement::new(vec![(18, y), (25, y)], style))?;
            }
            Mark::Block => {
                area.draw(&Rectangle::new([(8, y - 6), (28, y + 6)], e.color.filled()))?
            }
        }
        area.draw(&Text::new(e.name.clone(), (36, y - 7), font.clone()))?;
    }
    Ok(())
}

/// A colour per algorithm or series index, distinguishable and stable.
pub fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 10] = [
        full_palette::RED_700,
        full_palette::BLUE_700,
        full_palette::GREEN_700,
        full_palette::ORANGE_700,
        full_palette::PURPLE_500,
        full_palette::BROWN_500,
        full_palette::PINK_400,
        full_palette::CYAN_700,
        full_palette::LIME_800,
        full_palette::GREY_700,
    ];
    COLORS[i % COLORS.len()]
}

/// A line chart over member counts (log2 x axis).
pub fn lines(title: &str, x_label: &str, y_label: &str, series: &[Series], y: YAxis) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let (plot, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        // Drawing into a String cannot fail for I/O reasons; a plotting error
        // leaves an empty or partial chart rather than stopping the report.
        let _ = draw_lines(&plot, title, x_label, y_label, series, y);
        let _ = draw_legend(&legend, &line_entries(series));
        let _ = root.present();
    }
    svg
}

fn x_range(series: &[Series]) -> (f64, f64) {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let lo = xs.clone().fold(f64::INFINITY, f64::min);
    let hi = xs.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (1.0, 2.0);
    }
    if hi <= lo {
        (lo / 2.0, hi * 2.0)
    } else {
        (lo, hi)
    }
}

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y: YAxis,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    // Group sizes double from point to point: plot log2(N) on a linear axis
    // so that the ticks fall on 2, 4, 8, ...
    let (x0, x1) = x_range(series);
    let (x0, x1) = (
        x0.log2().floor(),
        x1.log2().ceil().max(x0.log2().floor() + 1.0),
    );
    let ticks = (x1 - x0) as usize + 1;
    let log2 =
        |s: &Series| -> Vec<(f64, f64)> { s.points.iter().map(|&(x, y)| (x.log2(), y)).collect() };
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64);
    let x_fmt = |v: &f64| {
        if (v - v.round()).abs() < 1e-6 {
            format!("{}", 2f64.powf(v.round()))
        } else {
            String::new()
        }
    };
    macro_rules! finish {
        ($chart:expr, $y_fmt:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .x_labels(ticks)
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&$y_fmt)
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            for s in series {
                let style = ShapeStyle::from(&s.color).stroke_width(2);
                if s.dashed {
                    chart.draw_series(DashedLineSeries::new(log2(s), 6, 4, style))?;
                } else {
                    chart.draw_series(LineSeries::new(log2(s), style))?;
                    chart.draw_series(
                        log2(s)
                            .into_iter()
                            .map(|p| Circle::new(p, 3, ShapeStyle::from(&s.color).filled())),
                    )?;
                }
            }
        }};
    }
    match y {
        YAxis::Percent(max) => finish!(
            builder.build_cartesian_2d(x0..x1, 0.0..max)?,
            |v: &f64| format!("{:.0}%", v * 100.0)
        ),
        YAxis::Log(lo, hi) => finish!(
            builder.build_cartesian_2d(x0..x1, (lo..hi).log_scale())?,
            |v: &f64| format!("{v}")
        ),
        YAxis::Linear(lo, hi) => finish!(
            builder.build_cartesian_2d(x0..x1, lo..hi)?,
            |v: &f64| format!("{v:.2}")
        ),
    }
    Ok(())
}

/// One layer of a stacked bar chart.
pub struct Stack {
    pub name: String,
    pub color: RGBColor,
    pub values: Vec<f64>,
}

/// Horizontal-category stacked bars (values as fractions, shown in percent).
pub fn stacked_bars(title: &str, y_label: &str, categories: &[String], stacks: &[Stack]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let (plot, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let _ = draw_stacked(&plot, title, y_label, categories, stacks);
        let entries: Vec<LegendEntry> = stacks
            .iter()
            .rev()
            .map(|s| LegendEntry {
                name: s.name.clone(),
                color: s.color,
                mark: Mark::Block,
            })
            .collect();
        let _ = draw_legend(&legend, &entries);
        let _ = root.present();
    }
    svg
}

fn draw_stacked<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    categories: &[String],
    stacks: &[Stack],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let n = categories.len().max(1);
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            stacks
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().cloned().fold(0.0, f64::max).max(0.01) * 1.1;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(70)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n as f64, 0f64..max)?;
    let label = |v: &f64| {
        let i = v.floor() as usize;
        if (v - v.floor() - 0.5).abs() < 1e-6 && i < categories.len() {
            categories[i].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&label)
        .x_label_style(
            ("sans-serif", 12)
                .into_font()
                .transform(FontTransform::Rotate90),
        )
        .y_desc(y_label)
        .y_label_formatter(&|v: &f64| format!("{:.0}%", v * 100.0))
        .draw()?;
    let mut base = vec![0f64; n];
    for stack in stacks {
        let color = stack.color;
        chart.draw_series((0..n).map(|i| {
            let v = stack.values.get(i).copied().unwrap_or(0.0);
            let (x0, x1) = (i as f64 + 0.15, i as f64 + 0.85);
            let r = Rectangle::new([(x0, base[i]), (x1, base[i] + v)], color.filled());
            base[i] += v;
            r
        }))?;
    }
    Ok(())
}

/// A labelled vertical line on a time axis (a timeline step).
pub struct Marker {
    pub x: f64,
    pub label: String,
}

/// Width in pixels of `text` at `size` px in a sans-serif font, roughly.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.56
}

/// Rows for marker labels so that no two labels in a row overlap: each
/// label goes into the first row whose last label ends before it starts.
/// `px_per_x` converts x units to pixels. Returns a row per marker.
fn marker_rows(markers: &[Marker], px_per_x: f64, font: f64, max_rows: usize) -> Vec<usize> {
    let mut ends: Vec<f64> = Vec::new();
    let mut order: Vec<usize> = (0..markers.len()).collect();
    order.sort_by(|&a, &b| markers[a].x.total_cmp(&markers[b].x));
    let mut rows = vec![0; markers.len()];
    for i in order {
        let start = markers[i].x * px_per_x;
        let end = start + 4.0 + text_width(&markers[i].label, font) + 6.0;
        let row = ends
            .iter()
            .position(|&e| e <= start)
            .unwrap_or(ends.len())
            .min(max_rows.saturating_sub(1));
        if row == ends.len() {
            ends.push(end);
        } else {
            ends[row] = ends[row].max(end);
        }
        rows[i] = row;
    }
    rows
}

/// How many label rows [`marker_rows`] needs.
fn marker_row_count(markers: &[Marker], px_per_x: f64, font: f64, max_rows: usize) -> usize {
    marker_rows(markers, px_per_x, font, max_rows)
        .into_iter()
        .max()
        .map_or(0, |r| r + 1)
}

type TimeChart<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Dashed grey verticals at each marker, labelled at the top of the plot in
/// rows that do not overlap.
fn draw_markers<DB: DrawingBackend>(
    chart: &mut TimeChart<'_, DB>,
    markers: &[Marker],
    y_top: f64,
    font: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (w, _) = chart.plotting_area().dim_in_pixel();
    let xr = chart.x_range();
    let px_per_x = w as f64 / (xr.end - xr.start).max(1e-9);
    let rows = marker_rows(markers, px_per_x, font, 4);
    let grey = RGBColor(90, 90, 90);
    let style = ShapeStyle::from(&grey).stroke_width(1);
    let text = ("sans-serif", font).into_font().color(&grey);
    let y0 = chart.y_range().start;
    for (m, &row) in markers.iter().zip(&rows) {
        chart.draw_series(DashedLineSeries::new(
            vec![(m.x, y0), (m.x, y_top)],
            5,
            4,
            style,
        ))?;
        chart.draw_series(std::iter::once(
            EmptyElement::at((m.x, y_top))
                + Text::new(
                    m.label.clone(),
                    (4, 2 + row as i32 * (font as i32 + 3)),
                    text.clone(),
                ),
        ))?;
    }
    Ok(())
}

/// A time tick without float noise: `10`, `2.5`.
fn time_label(v: &f64) -> String {
    format!("{}", (v * 1000.0).round() / 1000.0)
}

fn legend_width(names: impl Iterator<Item = usize>) -> u32 {
    let longest = names.max().unwrap_or(0) as f64;
    (longest * 13.0 * 0.56 + 46.0).clamp(120.0, 260.0) as u32
}

/// Lines over time (a linear x axis from 0 to `x_max`), with a dashed
/// vertical line and a label at each marker. `YAxis::Log` is drawn linear
/// between its bounds.
pub fn time_lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    markers: &[Marker],
    x_max: f64,
    y: YAxis,
) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let lw = legend_width(series.iter().map(|s| s.name.chars().count()));
        let (plot, legend) = root.split_horizontally(WIDTH - lw);
        let _ = draw_time_lines(&plot, title, x_label, y_label, series, markers, x_max, y);
        let _ = draw_legend(&legend, &line_entries(series));
        let _ = root.present();
    }
    svg
}

#[allow(clippy::too_many_arguments)]
fn draw_time_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    markers: &[Marker],
    x_max: f64,
    y: YAxis,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const FONT: f64 = 11.0;
    let (lo, hi, percent) = match y {
        YAxis::Percent(max) => (0.0, max, true),
        YAxis::Log(lo, hi) | YAxis::Linear(lo, hi) => (lo, hi, false),
    };
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    // Leave room above the data for the marker labels.
    let (w, h) = root.dim_in_pixel();
    let plot_w = (w as f64 - 64.0 - 24.0).max(10.0);
    let plot_h = (h as f64 - 40.0 - 60.0).max(10.0);
    let rows = marker_row_count(markers, plot_w / x_max, FONT, 4);
    let label_px = rows as f64 * (FONT + 3.0) + 4.0;
    let top = hi + (hi - lo) * label_px / (plot_h - label_px).max(10.0);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..x_max, lo..top)?;
    let y_fmt = |v: &f64| {
        if *v > hi + (hi - lo) * 1e-9 {
            String::new()
        } else if percent {
            format!("{:.0}%", v * 100.0)
        } else if hi - lo >= 20.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&time_label)
        .y_label_formatter(&y_fmt)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    draw_markers(&mut chart, markers, top, FONT)?;
    for s in series {
        let style = ShapeStyle::from(&s.color).stroke_width(2);
        if s.dashed {
            chart.draw_series(DashedLineSeries::new(s.points.clone(), 6, 4, style))?;
        } else {
            chart.draw_series(LineSeries::new(s.points.clone(), style))?;
        }
    }
    Ok(())
}

/// Layers stacked over time (`xs` with each layer's values, as fractions
/// shown in percent), filled, with markers; no legend (the page gives one,
/// so that small multiples share it). The y axis runs from 0 to 100%.
pub fn stacked_area(
    title: &str,
    xs: &[f64],
    layers: &[Stack],
    markers: &[Marker],
    x_max: f64,
    size: (u32, u32),
) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let _ = root.fill(&WHITE);
        let _ = draw_stacked_area(&root, title, xs, layers, markers, x_max);
        let _ = root.present();
    }
    svg
}

fn draw_stacked_area<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    xs: &[f64],
    layers: &[Stack],
    markers: &[Marker],
    x_max: f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const FONT: f64 = 10.0;
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let (w, h) = root.dim_in_pixel();
    let plot_w = (w as f64 - 48.0 - 16.0).max(10.0);
    let plot_h = (h as f64 - 30.0 - 40.0).max(10.0);
    let rows = marker_row_count(markers, plot_w / x_max, FONT, 3);
    let label_px = rows as f64 * (FONT + 3.0) + 4.0;
    let top = 1.0 + label_px / (plot_h - label_px).max(10.0);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..x_max, 0f64..top)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .x_labels(8)
        .x_label_formatter(&time_label)
        .y_labels(6)
        .label_style(("sans-serif", 11))
        .axis_desc_style(("sans-serif", 11))
        .y_label_formatter(&|v: &f64| {
            if *v > 1.0 + 1e-9 {
                String::new()
            } else {
                format!("{:.0}%", v * 100.0)
            }
        })
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let mut base = vec![0f64; xs.len()];
    for layer in layers {
        let upper: Vec<f64> = base
            .iter()
            .enumerate()
            .map(|(i, b)| b + layer.values.get(i).copied().unwrap_or(0.0))
            .collect();
        let mut points: Vec<(f64, f64)> = xs.iter().copied().zip(upper.iter().copied()).collect();
        points.extend(xs.iter().copied().zip(base.iter().copied()).rev());
        if points.len() >= 3 {
            chart.draw_series(std::iter::once(Polygon::new(points, layer.color.filled())))?;
        }
        base = upper;
    }
    draw_markers(&mut chart, markers, top, FONT)?;
    Ok(())
}

/// Horizontal stacked bars, one per category (top to bottom), values as
/// fractions shown in percent, each bar's total printed at its end, and
/// where `ticks` has a value a black reference tick across that bar. No
/// legend (the page gives one). The height follows the number of bars.
pub fn stacked_hbars(
    title: &str,
    x_label: &str,
    categories: &[String],
    stacks: &[Stack],
    ticks: &[Option<f64>],
    width: u32,
) -> String {
    let n = categories.len().max(1);
    let height = 70 + 30 * n as u32 + 40;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let _ = draw_hbars(&root, title, x_label, categories, stacks, ticks);
        let _ = root.present();
    }
    svg
}

fn draw_hbars<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    x_label: &str,
    categories: &[String],
    stacks: &[Stack],
    ticks: &[Option<f64>],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let n = categories.len().max(1);
    let totals: Vec<f64> = (0..n)
        .map(|i| {
            stacks
                .iter()
                .map(|s| s.values.get(i).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals
        .iter()
        .chain(ticks.iter().flatten())
        .cloned()
        .fold(0.0, f64::max)
        .max(0.01)
        * 1.18;
    let label_w = categories
        .iter()
        .map(|c| text_width(c, 12.0))
        .fold(40.0, f64::max) as u32
        + 24;
    // Category i is drawn at y = n - 1 - i so that the first is on top.
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 15))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(label_w)
        .build_cartesian_2d(0f64..max, (0..n as i32).into_segmented())?;
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(y) if (0..n as i32).contains(y) => {
            categories[n - 1 - *y as usize].clone()
        }
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .set_tick_mark_size(LabelAreaPosition::Left, 0)
        .y_labels(n)
        .y_label_formatter(&label)
        .label_style(("sans-serif", 12))
        .x_labels(6)
        .x_desc(x_label)
        .x_label_formatter(&|v: &f64| format!("{:.0}%", v * 100.0))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let mut base = vec![0f64; n];
    for stack in stacks {
        let color = stack.color;
        chart.draw_series((0..n).map(|i| {
            let v = stack.values.get(i).copied().unwrap_or(0.0);
            let y = (n - 1 - i) as i32;
            let mut r = Rectangle::new(
                [
                    (base[i], SegmentValue::Exact(y)),
                    (base[i] + v, SegmentValue::Exact(y + 1)),
                ],
                color.filled(),
            );
            r.set_margin(6, 6, 0, 0);
            base[i] += v;
            r
        }))?;
    }
    let font = ("sans-serif", 11).into_font().color(&BLACK);
    chart.draw_series((0..n).map(|i| {
        let y = (n - 1 - i) as i32;
        let x = ticks
            .get(i)
            .copied()
            .flatten()
            .unwrap_or(0.0)
            .max(totals[i]);
        EmptyElement::at((x, SegmentValue::CenterOf(y)))
            + Text::new(format!("{:.1}%", totals[i] * 100.0), (6, -6), font.clone())
    }))?;
    chart.draw_series(ticks.iter().enumerate().filter_map(|(i, t)| {
        let t = (*t)?;
        let y = (n - 1 - i) as i32;
        Some(PathElement::new(
            vec![(t, SegmentValue::Exact(y)), (t, SegmentValue::Exact(y + 1))],
            ShapeStyle::from(&BLACK).stroke_width(2),
        ))
    }))?;
    Ok(())
}
