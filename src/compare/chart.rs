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
        let entries: Vec<LegendEntry> = series
            .iter()
            .map(|s| LegendEntry {
                name: s.name.clone(),
                color: s.color,
                mark: if s.dashed { Mark::Dashed } else { Mark::Line },
            })
            .collect();
        let _ = draw_legend(&legend, &entries);
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
