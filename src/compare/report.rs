//! Writes a comparison's results: a self-contained `index.html` with charts,
//! `report.md`, `results.json` and `results.csv`, and derives the verdict a
//! reader wants first: which algorithm to pick, and why.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hashing::disrupt::Change;
use hashing::Algorithm;

use super::chart::{self, Series, Stack, YAxis};
use super::{CompareError, Record, Results};

/// The files a report consists of.
pub struct Written {
    pub html: PathBuf,
    pub markdown: PathBuf,
    pub json: PathBuf,
    pub csv: PathBuf,
}

/// The slice of the matrix the headline charts and the verdict are drawn
/// from: the first traffic model, 5-tuple fields if compared (else the
/// first), the first hash function, and a representative group size.
pub struct Reference {
    pub traffic: String,
    pub fields: String,
    pub hash: String,
    pub members: usize,
}

impl Reference {
    pub fn of(results: &Results) -> Option<Reference> {
        let first = results.records.first()?;
        let fields = if results.records.iter().any(|r| r.fields == "l4") {
            "l4".to_string()
        } else {
            first.fields.clone()
        };
        let mut sizes: Vec<usize> = results.records.iter().map(|r| r.members).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let members = if sizes.contains(&8) {
            8
        } else {
            sizes[sizes.len() / 2]
        };
        Some(Reference {
            traffic: first.traffic.clone(),
            fields,
            hash: first.hash.clone(),
            members,
        })
    }

    fn matches(&self, r: &Record) -> bool {
        r.traffic == self.traffic && r.fields == self.fields && r.hash == self.hash
    }
}

/// One algorithm's headline figures at the reference slice.
#[derive(Clone, Debug)]
pub struct Row {
    pub algorithm: String,
    pub remove: Option<f64>,
    pub remove_collateral: Option<f64>,
    pub add: Option<f64>,
    pub flap: Option<f64>,
    pub weight: Option<f64>,
    pub balance: f64,
    pub lookup_ns: f64,
}

fn algorithms_in(results: &Results) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in &results.records {
        if !names.contains(&r.algorithm) {
            names.push(r.algorithm.clone());
        }
    }
    names
}

fn color_of(algorithm: &str) -> plotters::style::RGBColor {
    let i = Algorithm::ALL
        .iter()
        .position(|a| a.name() == algorithm)
        .unwrap_or(Algorithm::ALL.len());
    chart::color(i)
}

/// The headline rows, one per algorithm, at the reference slice.
pub fn rows(results: &Results, reference: &Reference) -> Vec<Row> {
    let find = |alg: &str, change: Change| {
        results.records.iter().find(|r| {
            reference.matches(r)
                && r.algorithm == alg
                && r.members == reference.members
                && r.change == change.name()
        })
    };
    algorithms_in(results)
        .into_iter()
        .filter_map(|alg| {
            let any = results.records.iter().find(|r| {
                reference.matches(r) && r.algorithm == alg && r.members == reference.members
            })?;
            Some(Row {
                remove: find(&alg, Change::Remove).map(|r| r.remapped),
                remove_collateral: find(&alg, Change::Remove).map(|r| r.collateral),
                add: find(&alg, Change::Add).map(|r| r.remapped),
                flap: find(&alg, Change::Flap).map(|r| r.remapped),
                weight: find(&alg, Change::Weight).map(|r| r.remapped),
                balance: any.balance_max_over_mean,
                lookup_ns: any.lookup_ns,
                algorithm: alg,
            })
        })
        .collect()
}

/// The verdict: the algorithm to pick and the reasons, as plain sentences.
pub struct Verdict {
    pub pick: Option<String>,
    pub sentences: Vec<String>,
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// An algorithm's overall standing across every group size of the
/// reference slice.
#[derive(Clone, Debug)]
pub struct Standing {
    pub algorithm: String,
    /// Worst collateral share on removal over all group sizes.
    pub worst_collateral: f64,
    /// Mean over group sizes of the breakage beyond the theoretical minimum,
    /// summed over the remove, add and flap changes (as a fraction).
    pub excess: f64,
    /// Mean over group sizes of the busiest member's overload (max/mean - 1).
    pub overload: f64,
    /// Mean lookup cost over group sizes.
    pub lookup_ns: f64,
    /// `excess + overload / 2`: lower is better.
    pub score: f64,
}

/// Rank algorithms: those whose collateral on removal stays under 0.5 point
/// at every group size come first; then by score (excess breakage beyond the
/// unavoidable, plus half the busiest node's overload, averaged over group
/// sizes); scores within 0.5 point count as equal and the cheaper lookup wins.
pub fn standings(results: &Results, reference: &Reference) -> Vec<Standing> {
    let mut out: Vec<Standing> = algorithms_in(results)
        .into_iter()
        .filter_map(|alg| {
            let recs: Vec<&Record> = results
                .records
                .iter()
                .filter(|r| reference.matches(r) && r.algorithm == alg)
                .collect();
            let mut sizes: Vec<usize> = recs.iter().map(|r| r.members).collect();
            sizes.sort_unstable();
            sizes.dedup();
            if sizes.is_empty() {
                return None;
            }
            let (mut excess, mut overload, mut lookup, mut worst) = (0.0, 0.0, 0.0, 0.0f64);
            for &n in &sizes {
                let at: Vec<&&Record> = recs.iter().filter(|r| r.members == n).collect();
                for r in &at {
                    match r.change.as_str() {
                        "remove" => {
                            excess += (r.remapped - r.ideal).max(0.0);
                            worst = worst.max(r.collateral);
                        }
                        "add" | "flap" => excess += (r.remapped - r.ideal).max(0.0),
                        _ => {}
                    }
                }
                overload += at[0].balance_max_over_mean - 1.0;
                lookup += at[0].lookup_ns;
            }
            let k = sizes.len() as f64;
            let (excess, overload) = (excess / k, overload / k);
            Some(Standing {
                algorithm: alg,
                worst_collateral: worst,
                excess,
                overload,
                lookup_ns: lookup / k,
                score: excess + overload / 2.0,
            })
        })
        .collect();
    let clean = |s: &Standing| s.worst_collateral <= 0.005;
    out.sort_by(|a, b| clean(b).cmp(&clean(a)).then(a.score.total_cmp(&b.score)));
    // Within 0.5 point of the best of its class, the cheaper lookup wins.
    if let Some(best) = out.first().cloned() {
        let tied = out
            .iter()
            .take_while(|s| clean(s) == clean(&best) && s.score - best.score <= 0.005)
            .count();
        out[..tied].sort_by(|a, b| a.lookup_ns.total_cmp(&b.lookup_ns));
    }
    out
}

/// The verdict from [`standings`], in sentences a reader can act on.
pub fn verdict(results: &Results, reference: &Reference) -> Verdict {
    let rows = rows(results, reference);
    let n = reference.members;
    let mut sentences = Vec::new();
    let standings = standings(results, reference);
    let pick = standings.first().map(|s| s.algorithm.clone());
    let row_of = |alg: &str| rows.iter().find(|r| r.algorithm == alg);

    if let (Some(top), Some(best)) = (standings.first(), pick.as_deref().and_then(row_of)) {
        let mut s = format!(
            "Pick {}: when one of {n} nodes leaves it breaks {} of connections",
            best.algorithm,
            best.remove.map(pct).unwrap_or_else(|| "n/a".into()),
        );
        let _ = write!(
            s,
            " (the unavoidable minimum is {}), {} of them on nodes that stayed",
            pct(Change::Remove.ideal(n)),
            best.remove_collateral
                .map(pct)
                .unwrap_or_else(|| "n/a".into())
        );
        if let Some(flap) = best.flap {
            let _ = write!(s, "; a node restart (flap) breaks {}", pct(flap));
        }
        let _ = write!(
            s,
            "; its busiest node carries {:.2}x its fair share; a lookup costs {:.1} ns. Over every group size compared it breaks {:.1} points more than the minimum on average (remove, add and flap together).",
            best.balance, best.lookup_ns, top.excess * 100.0
        );
        sentences.push(s);
        let runners: Vec<String> = standings[1..]
            .iter()
            .filter(|s| s.worst_collateral <= 0.005)
            .take(3)
            .map(|s| {
                format!(
                    "{} ({:.1} points of excess breakage, {:.0}% overload, {:.1} ns)",
                    s.algorithm,
                    s.excess * 100.0,
                    s.overload * 100.0,
                    s.lookup_ns
                )
            })
            .collect();
        if !runners.is_empty() {
            sentences.push(format!(
                "Runners-up, with at most 0.5 point of collateral breakage on removal at any group size: {}.",
                runners.join("; ")
            ));
        }
        let weighted = |name: &str| {
            name.parse::<Algorithm>()
                .map(|a| a.supports_weights())
                .unwrap_or(true)
        };
        if !weighted(&top.algorithm) {
            if let Some(w) = standings[1..]
                .iter()
                .find(|s| s.worst_collateral <= 0.005 && weighted(&s.algorithm))
            {
                sentences.push(format!(
                    "{} has no weights: where nodes need unequal shares, take {} ({:.1} points of excess breakage, {:.0}% overload, {:.1} ns).",
                    top.algorithm,
                    w.algorithm,
                    w.excess * 100.0,
                    w.overload * 100.0,
                    w.lookup_ns
                ));
            }
        }
    }
    let mut offenders: Vec<&Row> = rows
        .iter()
        .filter(|r| r.remove_collateral.map(|c| c > 0.005).unwrap_or(false))
        .collect();
    offenders.sort_by(|a, b| {
        b.remove_collateral
            .partial_cmp(&a.remove_collateral)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for r in offenders {
        let (Some(remove), Some(coll)) = (r.remove, r.remove_collateral) else {
            continue;
        };
        sentences.push(format!(
            "Avoid {} where connections matter: when one of {n} nodes leaves it breaks {} of connections, {:.1}x the unavoidable minimum; {} break although their node stayed.",
            r.algorithm,
            pct(remove),
            remove / Change::Remove.ideal(n),
            pct(coll)
        ));
    }
    if rows.iter().any(|r| r.algorithm == "resilient") && pick.as_deref() != Some("resilient") {
        sentences.push(
            "On a Linux router the resilient choice is a resilient nexthop group (ip nexthop ... type resilient); its idle timer also keeps busy flows in place when a node joins or returns, which this snapshot does not credit (it assumes every bucket idle)."
                .to_string(),
        );
    }
    if let Some(s) = hot_spot_sentence(results, pick.as_deref()) {
        sentences.push(s);
    }
    if let Some(s) = hash_sentence(results, reference) {
        sentences.push(s);
    }
    Verdict { pick, sentences }
}

/// Compare 3-tuple and 5-tuple balance on the traffic where it matters most.
fn hot_spot_sentence(results: &Results, algorithm: Option<&str>) -> Option<String> {
    let algorithm = algorithm?;
    let at = |traffic: &str, fields: &str| {
        results
            .records
            .iter()
            .filter(|r| r.algorithm == algorithm && r.traffic == traffic && r.fields == fields)
            .max_by_key(|r| r.members)
    };
    let traffic = results
        .traffic
        .iter()
        .find(|t| t.name == "cgnat")
        .or_else(|| results.traffic.first())?;
    let l3 = at(&traffic.name, "l3-proto").or_else(|| at(&traffic.name, "l3"))?;
    let l4 = at(&traffic.name, "l4")?;
    Some(format!(
        "Hash on the 5-tuple: on {} traffic ({} distinct sources) with {} members, {} hashing loads the busiest node at {:.2}x its fair share, against {:.2}x with l4.",
        traffic.name, traffic.distinct_sources, l3.members, l3.fields, l3.balance_max_over_mean, l4.balance_max_over_mean
    ))
}

/// The busiest of `n` bins over the mean when `flows` land uniformly at
/// random: about 1 + sqrt(2 ln n x n / flows) (the expected maximum of n
/// near-normal counts). A hash can do no better on average.
pub fn random_floor(n: usize, flows: usize) -> f64 {
    if n < 2 || flows == 0 {
        return 1.0;
    }
    let n_f = n as f64;
    1.0 + (2.0 * n_f.ln() * n_f / flows as f64).sqrt()
}

/// The largest group size among the hash-quality figures.
fn largest_quality_size(results: &Results) -> Option<usize> {
    results.hash_quality.iter().map(|q| q.members).max()
}

/// Whether the hash function matters on the reference fields.
fn hash_sentence(results: &Results, reference: &Reference) -> Option<String> {
    let n = largest_quality_size(results)?;
    let floor = random_floor(n, results.flows);
    let mut worst: Vec<(String, f64, String)> = Vec::new();
    for q in results
        .hash_quality
        .iter()
        .filter(|q| q.members == n && q.fields == reference.fields)
    {
        let w = q.low_bits_max_over_mean.max(q.high_bits_max_over_mean);
        match worst.iter_mut().find(|e| e.0 == q.hash) {
            Some(e) if e.1 < w => {
                e.1 = w;
                e.2 = q.traffic.clone();
            }
            Some(_) => {}
            None => worst.push((q.hash.clone(), w, q.traffic.clone())),
        }
    }
    if worst.is_empty() {
        return None;
    }
    let bad: Vec<String> = worst
        .iter()
        .filter(|e| e.1 > floor + 0.05)
        .map(|e| format!("{} ({:.2}x on {})", e.0, e.1, e.2))
        .collect();
    let best = worst.iter().map(|e| e.1).fold(f64::INFINITY, f64::min);
    Some(if bad.is_empty() {
        format!(
            "The hash function matters less than the fields: on {} fields every function compared spreads flows over {n} members about as evenly as chance allows (busiest node at most {:.2}x the mean; chance gives about {:.2}x).",
            reference.fields,
            worst.iter().map(|e| e.1).fold(0.0, f64::max),
            floor
        )
    } else {
        format!(
            "On {} fields some hash functions spread flows over {n} members worse than chance ({:.2}x): {}; the best reaches {:.2}x.",
            reference.fields,
            floor,
            bad.join(", "),
            best
        )
    })
}

/// The (traffic, fields) columns and hash-function rows of the hash-quality
/// table, in the order the figures were computed.
fn quality_axes(results: &Results) -> (Vec<(String, String)>, Vec<String>) {
    let mut combos: Vec<(String, String)> = Vec::new();
    let mut functions: Vec<String> = Vec::new();
    for q in &results.hash_quality {
        let c = (q.traffic.clone(), q.fields.clone());
        if !combos.contains(&c) {
            combos.push(c);
        }
        if !functions.contains(&q.hash) {
            functions.push(q.hash.clone());
        }
    }
    (combos, functions)
}

fn hash_table_html(results: &Results) -> String {
    let Some(n) = largest_quality_size(results) else {
        return String::new();
    };
    let (combos, functions) = quality_axes(results);
    let floor = random_floor(n, results.flows);
    let mut h = format!(
        "<table><thead><tr><th>hash function</th>{}</tr></thead><tbody>",
        combos
            .iter()
            .map(|(t, f)| format!("<th>{} {}</th>", esc(t), esc(f)))
            .collect::<String>()
    );
    for f in &functions {
        let _ = write!(h, "<tr><td>{}</td>", esc(f));
        for (t, fl) in &combos {
            let cell = results
                .hash_quality
                .iter()
                .find(|q| &q.hash == f && &q.traffic == t && &q.fields == fl && q.members == n);
            match cell {
                Some(q) => {
                    let hot =
                        q.low_bits_max_over_mean.max(q.high_bits_max_over_mean) > floor + 0.05;
                    let style = if hot {
                        " style=\"background:#fdecea\""
                    } else {
                        ""
                    };
                    let _ = write!(
                        h,
                        "<td{style} title=\"{} distinct hashes\">{:.2} / {:.2}</td>",
                        q.distinct_hashes, q.low_bits_max_over_mean, q.high_bits_max_over_mean
                    );
                }
                None => h.push_str("<td>—</td>"),
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table>");
    let _ = write!(
        h,
        "<p>Busiest of {n} members' flow count over the mean, read through the low bits (hash mod N: modulo, resilient buckets, Maglev) / the high bits (hash-threshold). Chance alone gives about {floor:.2} with {} flows; red cells are more than 0.05 above it. Flows are counted, not bytes, so heavy hitters do not hide the hash. Hover a cell for the number of distinct hash values: with few distinct inputs (CGNAT under 3-tuple hashing) no function can spread the load.</p>",
        results.flows
    );
    h
}

fn hash_table_md(results: &Results) -> String {
    let Some(n) = largest_quality_size(results) else {
        return String::new();
    };
    let (combos, functions) = quality_axes(results);
    let mut m = format!(
        "\n## Hash functions: busiest of {n} members over the mean (low bits / high bits)\n\nChance alone gives about {:.2} with {} flows.\n\n| hash |",
        random_floor(n, results.flows),
        results.flows
    );
    for (t, f) in &combos {
        let _ = write!(m, " {t} {f} |");
    }
    m.push_str("\n|---|");
    for _ in &combos {
        m.push_str("---:|");
    }
    m.push('\n');
    for f in &functions {
        let _ = write!(m, "| {f} |");
        for (t, fl) in &combos {
            match results
                .hash_quality
                .iter()
                .find(|q| &q.hash == f && &q.traffic == t && &q.fields == fl && q.members == n)
            {
                Some(q) => {
                    let _ = write!(
                        m,
                        " {:.2} / {:.2} |",
                        q.low_bits_max_over_mean, q.high_bits_max_over_mean
                    );
                }
                None => m.push_str(" — |"),
            }
        }
        m.push('\n');
    }
    m
}

/// Build one line per algorithm from the reference slice.
fn series_by_algorithm(
    results: &Results,
    reference: &Reference,
    change: Option<Change>,
    value: fn(&Record) -> f64,
) -> Vec<Series> {
    algorithms_in(results)
        .into_iter()
        .filter_map(|alg| {
            let mut points: Vec<(f64, f64)> = results
                .records
                .iter()
                .filter(|r| {
                    reference.matches(r)
                        && r.algorithm == alg
                        && change.map(|c| r.change == c.name()).unwrap_or(true)
                })
                .map(|r| (r.members as f64, value(r)))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            points.dedup_by(|a, b| a.0 == b.0);
            (!points.is_empty()).then(|| Series {
                color: color_of(&alg),
                name: alg,
                points,
                dashed: false,
            })
        })
        .collect()
}

fn ideal_series(results: &Results, change: Change) -> Series {
    let mut sizes: Vec<usize> = results.records.iter().map(|r| r.members).collect();
    sizes.sort_unstable();
    sizes.dedup();
    Series {
        name: format!(
            "ideal ({})",
            if change == Change::Add {
                "1/(N+1)"
            } else {
                "1/N"
            }
        ),
        color: plotters::style::BLACK,
        points: sizes.iter().map(|&n| (n as f64, change.ideal(n))).collect(),
        dashed: true,
    }
}

fn has_change(results: &Results, change: Change) -> bool {
    results.records.iter().any(|r| r.change == change.name())
}

/// A chart and the sentences that tell a reader how to read it.
struct Figure {
    title: String,
    svg: String,
    caption: String,
}

fn figures(results: &Results, reference: &Reference) -> Vec<Figure> {
    let mut out = Vec::new();
    let slice = format!(
        "{} traffic, {} fields, {} hash",
        reference.traffic, reference.fields, reference.hash
    );
    for (change, what) in [
        (Change::Remove, "one node leaves"),
        (Change::Add, "one node joins"),
        (Change::Flap, "one node leaves and returns"),
    ] {
        if !has_change(results, change) {
            continue;
        }
        let mut series = series_by_algorithm(results, reference, Some(change), |r| r.remapped);
        series.push(ideal_series(results, change));
        let max = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max)
            .max(0.05)
            * 1.05;
        out.push(Figure {
            title: format!("Connections broken when {what}"),
            svg: chart::lines(
                &format!("Broken connections when {what} ({slice})"),
                "members (N)",
                "connections broken",
                &series,
                YAxis::Percent(max.min(1.05)),
            ),
            caption: match change {
                Change::Remove => "Share of live connections whose packets go to a different node after one node leaves. The dashed line is the unavoidable minimum: the leaving node's own connections (1/N). A line on the dashed one breaks nothing else; modulo-N climbs towards 100% as groups grow.".into(),
                Change::Add => "Share of connections moved when a node joins. Balance needs 1/(N+1) of the connections to move to the new node (dashed line); more than that is pure loss.".into(),
                _ => "A node leaves and comes back (a restart). Connections count once, whether they moved away or back. Algorithms that restore the old mapping stay at 1/N; others pay twice.".into(),
            },
        });
    }
    if has_change(results, Change::Remove) {
        let rows = rows(results, reference);
        let categories: Vec<String> = rows.iter().map(|r| r.algorithm.clone()).collect();
        let stacks = vec![
            Stack {
                name: "unavoidable (node left)".into(),
                color: chart::color(9),
                values: rows
                    .iter()
                    .map(|r| r.remove.unwrap_or(0.0) - r.remove_collateral.unwrap_or(0.0))
                    .collect(),
            },
            Stack {
                name: "collateral (node stayed)".into(),
                color: chart::color(0),
                values: rows
                    .iter()
                    .map(|r| r.remove_collateral.unwrap_or(0.0))
                    .collect(),
            },
        ];
        out.push(Figure {
            title: "Unavoidable and collateral breakage".into(),
            svg: chart::stacked_bars(
                &format!("One of {} nodes leaves: why connections broke", reference.members),
                "connections broken",
                &categories,
                &stacks,
            ),
            caption: "Grey: connections of the node that left, which no algorithm can save. Red: connections that broke although their node is still up: collateral damage caused by the algorithm alone. Ideal resilient hashing has no red.".into(),
        });
    }
    let balance = series_by_algorithm(results, reference, None, |r| r.balance_max_over_mean);
    let bmax = balance
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    out.push(Figure {
        title: "Balance".into(),
        svg: chart::lines(
            &format!("Busiest node's load over its fair share ({slice})"),
            "members (N)",
            "max / mean load",
            &balance,
            YAxis::Linear(1.0, bmax * 1.05 + 0.01),
        ),
        caption: "1.0 means every node carries exactly its share. Table-based algorithms with few entries per node (resilient buckets) and rings with few points drift upwards as groups grow; the hash's own randomness sets the floor.".into(),
    });
    if let Some(fields) = fields_figure(results, reference) {
        out.push(fields);
    }
    let lookup = series_by_algorithm(results, reference, None, |r| r.lookup_ns);
    let (lo, hi) = lookup
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if hi > 0.0 {
        out.push(Figure {
            title: "Lookup cost".into(),
            svg: chart::lines(
                "Nanoseconds per lookup on this machine (median)",
                "members (N)",
                "ns per lookup (log)",
                &lookup,
                YAxis::Log((lo / 2.0).max(0.01), hi * 2.0),
            ),
            caption: "Time to pick a member for one flow hash, measured one algorithm at a time. Rendezvous is O(N); table lookups (modulo, resilient, Maglev) are O(1); ring and hash-threshold search.".into(),
        });
    }
    out
}

/// Balance per traffic model and field selection, for the chosen algorithm:
/// where 3-tuple hashing makes hot spots.
fn fields_figure(results: &Results, reference: &Reference) -> Option<Figure> {
    let mut combos: Vec<(String, String)> = Vec::new();
    for r in &results.records {
        let c = (r.traffic.clone(), r.fields.clone());
        if !combos.contains(&c) {
            combos.push(c);
        }
    }
    if combos.len() < 2 {
        return None;
    }
    let algorithm = verdict(results, reference)
        .pick
        .unwrap_or_else(|| results.records[0].algorithm.clone());
    let series: Vec<Series> = combos
        .iter()
        .enumerate()
        .map(|(i, (traffic, fields))| {
            let mut points: Vec<(f64, f64)> = results
                .records
                .iter()
                .filter(|r| {
                    r.algorithm == algorithm
                        && &r.traffic == traffic
                        && &r.fields == fields
                        && r.hash == reference.hash
                })
                .map(|r| (r.members as f64, r.balance_max_over_mean))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            points.dedup_by(|a, b| a.0 == b.0);
            Series {
                name: format!("{traffic}, {fields}"),
                color: chart::color(i),
                points,
                dashed: fields != "l4",
            }
        })
        .collect();
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    Some(Figure {
        title: "Hot spots by traffic and hash fields".into(),
        svg: chart::lines(
            &format!("Busiest node's load over fair share, {algorithm}, per traffic and fields"),
            "members (N)",
            "max / mean load",
            &series,
            YAxis::Linear(1.0, max * 1.05 + 0.01),
        ),
        caption: "The same algorithm on each traffic model, hashed on 3 fields (dashed) or 5 (solid). Clients behind CGNAT share a few source addresses: 3-tuple hashing sends all of a source's connections to one node, so a few nodes run hot. Heavy hitters (Zipf) skew byte load whatever the fields.".into(),
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn opt_pct(v: Option<f64>) -> String {
    v.map(pct).unwrap_or_else(|| "—".into())
}

fn summary_table_html(rows: &[Row], pick: Option<&str>) -> String {
    let mut h = String::from(
        "<table><thead><tr><th>algorithm</th><th>node leaves</th><th>of which collateral</th><th>node joins</th><th>node restarts (flap)</th><th>weight 1→2</th><th>max/mean load</th><th>ns/lookup</th></tr></thead><tbody>",
    );
    for r in rows {
        let class = if Some(r.algorithm.as_str()) == pick {
            " class=\"pick\""
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.1}</td></tr>",
            esc(&r.algorithm),
            opt_pct(r.remove),
            opt_pct(r.remove_collateral),
            opt_pct(r.add),
            opt_pct(r.flap),
            opt_pct(r.weight),
            r.balance,
            r.lookup_ns
        );
    }
    h.push_str("</tbody></table>");
    h
}

fn summary_table_md(rows: &[Row], pick: Option<&str>) -> String {
    let mut m = String::from(
        "| algorithm | node leaves | of which collateral | node joins | node restarts (flap) | weight 1→2 | max/mean load | ns/lookup |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let name = if Some(r.algorithm.as_str()) == pick {
            format!("**{}**", r.algorithm)
        } else {
            r.algorithm.clone()
        };
        let _ = writeln!(
            m,
            "| {name} | {} | {} | {} | {} | {} | {:.3} | {:.1} |",
            opt_pct(r.remove),
            opt_pct(r.remove_collateral),
            opt_pct(r.add),
            opt_pct(r.flap),
            opt_pct(r.weight),
            r.balance,
            r.lookup_ns
        );
    }
    m
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}\
h1{margin-bottom:.2em}.sub{color:#666;margin-top:0}.verdict{background:#f3f8f1;border-left:5px solid #2e7d32;padding:.8em 1.2em;margin:1.2em 0}\
.verdict p{margin:.4em 0}table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}\
th:first-child,td:first-child{text-align:left}tr.pick{background:#e8f5e9;font-weight:600}figure{margin:2em 0}figcaption{color:#444;max-width:760px}\
details{margin:1.5em 0}.warning{background:#fff4e5;border-left:5px solid #ef6c00;padding:.5em 1em}code{background:#f4f4f4;padding:0 .2em}.params td{text-align:left}";

fn html(results: &Results, reference: Option<&Reference>) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>ecmpd: ECMP hashing comparison</title><style>{STYLE}</style></head><body>"
    );
    let _ = write!(
        h,
        "<h1>ECMP hashing comparison</h1><p class=\"sub\">ecmpd {} · {} flows per traffic model · seed {} · {} figures in {:.1} s</p>",
        results.ecmpd_version,
        results.flows,
        results.seed,
        results.records.len(),
        results.elapsed_s
    );
    h.push_str("<p>When a node behind a load-balanced service IP leaves or joins, the router re-maps flows to nodes. Every connection whose packets suddenly reach another node breaks (the new node answers with a reset). This report measures, for each nexthop-selection algorithm on the same flows, how many connections a change breaks, how evenly it spreads load, and what a lookup costs.</p>");
    let Some(reference) = reference else {
        h.push_str("<p>No results.</p></body></html>");
        return h;
    };
    let v = verdict(results, reference);
    for w in &results.warnings {
        let _ = write!(h, "<p class=\"warning\">⚠ {}</p>", esc(w));
    }
    h.push_str("<section class=\"verdict\"><h2>Which algorithm to pick</h2>");
    for s in &v.sentences {
        let _ = write!(h, "<p>{}</p>", esc(s));
    }
    h.push_str("</section>");
    let _ = write!(
        h,
        "<h2>At a glance: {} members, {} traffic, {} fields, {} hash</h2>",
        reference.members,
        esc(&reference.traffic),
        esc(&reference.fields),
        esc(&reference.hash)
    );
    h.push_str(&summary_table_html(
        &rows(results, reference),
        v.pick.as_deref(),
    ));
    h.push_str("<p>Percentages are shares of live connections broken by one change; “collateral” are those broken although their node stayed. Load balance is before the change, by bytes. A dash means the change does not apply (the algorithm has no weights) or was not run.</p>");
    for f in figures(results, reference) {
        let _ = write!(
            h,
            "<figure><h3>{}</h3>{}<figcaption>{}</figcaption></figure>",
            esc(&f.title),
            f.svg,
            esc(&f.caption)
        );
    }
    if !results.hash_quality.is_empty() {
        h.push_str("<h2>Hash functions</h2>");
        h.push_str(&hash_table_html(results));
    }
    h.push_str("<h2>Traffic models</h2><table><thead><tr><th>traffic</th><th>flows</th><th>distinct sources</th><th>bytes in top 1% of flows</th></tr></thead><tbody>");
    for t in &results.traffic {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.name),
            t.flows,
            t.distinct_sources,
            pct(t.top1pct_byte_share)
        );
    }
    h.push_str("</tbody></table><p>A model with few distinct sources (CGNAT) has few distinct 3-tuples: under 3-tuple hashing a handful of hash values decide all its figures, so they change with the seed however many flows are drawn. The other figures are stable to about 0.5 point at 100,000 flows.</p>");
    let p = &results.params;
    let _ = write!(
        h,
        "<h2>How this was measured</h2><p>Each algorithm builds a group of N members (ids 1..N, weight 1), maps every flow's hash, applies the change, lets the group settle (a resilient group's idle timer runs out with no traffic, so every overweight bucket may move: the worst case for busy flows), and maps again. A flow breaks the first time its member changes. Changes that hit one member are averaged over up to four positions (first, a third, two thirds, last), because position matters to hash-threshold. The emulator (<code>ecmpd emulate</code>) models time, traffic and idle timers.</p>\
<table class=\"params\"><tr><td>resilient buckets</td><td>{}</td></tr><tr><td>resilient idle / unbalanced timer</td><td>{} s / {} s</td></tr><tr><td>Maglev table size</td><td>{}</td></tr><tr><td>ring points per member</td><td>{}</td></tr><tr><td>symmetric hashing</td><td>{}</td></tr></table>",
        p.resilient.buckets,
        p.resilient.idle_timer / 1_000_000_000,
        p.resilient.unbalanced_timer / 1_000_000_000,
        p.maglev_table_size,
        p.ring_vnodes,
        results.symmetric
    );
    h.push_str("<details><summary>Every figure (also in results.csv and results.json)</summary><table><thead><tr><th>algorithm</th><th>traffic</th><th>fields</th><th>hash</th><th>N</th><th>change</th><th>broken</th><th>unavoidable</th><th>collateral</th><th>ideal</th><th>max/mean</th><th>cv</th><th>ns/lookup</th></tr></thead><tbody>");
    for r in &results.records {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.1}</td></tr>",
            esc(&r.algorithm),
            esc(&r.traffic),
            esc(&r.fields),
            esc(&r.hash),
            r.members,
            esc(&r.change),
            pct(r.remapped),
            pct(r.unavoidable),
            pct(r.collateral),
            pct(r.ideal),
            r.balance_max_over_mean,
            r.balance_cv,
            r.lookup_ns
        );
    }
    h.push_str("</tbody></table></details></body></html>");
    h
}

fn markdown(results: &Results, reference: Option<&Reference>) -> String {
    let mut m = String::from("# ECMP hashing comparison\n\n");
    let _ = writeln!(
        m,
        "ecmpd {}, {} flows per traffic model, seed {}, {} figures in {:.1} s.\n",
        results.ecmpd_version,
        results.flows,
        results.seed,
        results.records.len(),
        results.elapsed_s
    );
    let Some(reference) = reference else {
        m.push_str("No results.\n");
        return m;
    };
    let v = verdict(results, reference);
    for w in &results.warnings {
        let _ = writeln!(m, "> **Warning:** {w}\n");
    }
    m.push_str("## Which algorithm to pick\n\n");
    for s in &v.sentences {
        let _ = writeln!(m, "- {s}");
    }
    let _ = writeln!(
        m,
        "\n## At a glance: {} members, {} traffic, {} fields, {} hash\n",
        reference.members, reference.traffic, reference.fields, reference.hash
    );
    m.push_str(&summary_table_md(
        &rows(results, reference),
        v.pick.as_deref(),
    ));
    if has_change(results, Change::Remove) {
        let mut sizes: Vec<usize> = results.records.iter().map(|r| r.members).collect();
        sizes.sort_unstable();
        sizes.dedup();
        m.push_str("\n## Connections broken when one node leaves, by group size\n\n| algorithm |");
        for n in &sizes {
            let _ = write!(m, " N={n} |");
        }
        m.push_str("\n|---|");
        for _ in &sizes {
            m.push_str("---:|");
        }
        m.push('\n');
        for alg in algorithms_in(results) {
            let _ = write!(m, "| {alg} |");
            for n in &sizes {
                let cell = results
                    .records
                    .iter()
                    .find(|r| {
                        reference.matches(r)
                            && r.algorithm == alg
                            && r.members == *n
                            && r.change == "remove"
                    })
                    .map(|r| format!("{} ({} coll.)", pct(r.remapped), pct(r.collateral)))
                    .unwrap_or_else(|| "—".into());
                let _ = write!(m, " {cell} |");
            }
            m.push('\n');
        }
        m.push_str("| *ideal* |");
        for n in &sizes {
            let _ = write!(m, " {} |", pct(Change::Remove.ideal(*n)));
        }
        m.push('\n');
    }
    m.push_str(&hash_table_md(results));
    m.push_str("\nCharts: open `index.html`. Every figure: `results.csv`, `results.json`.\n");
    m
}

fn csv(results: &Results) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in &results.records {
        w.serialize(r)?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// Write the four files into `dir`.
pub fn write(results: &Results, dir: &Path) -> Result<Written, CompareError> {
    let fail = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CompareError::Output { path, source }
    };
    std::fs::create_dir_all(dir).map_err(fail(dir))?;
    let reference = Reference::of(results);
    let written = Written {
        html: dir.join("index.html"),
        markdown: dir.join("report.md"),
        json: dir.join("results.json"),
        csv: dir.join("results.csv"),
    };
    std::fs::write(&written.html, html(results, reference.as_ref()))
        .map_err(fail(&written.html))?;
    std::fs::write(&written.markdown, markdown(results, reference.as_ref()))
        .map_err(fail(&written.markdown))?;
    let json = serde_json::to_vec_pretty(results).map_err(|e| CompareError::Output {
        path: written.json.clone(),
        source: e.into(),
    })?;
    std::fs::write(&written.json, json).map_err(fail(&written.json))?;
    let csv = csv(results).map_err(|e| CompareError::Output {
        path: written.csv.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&written.csv, csv).map_err(fail(&written.csv))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashing::SelectorParams;

    fn record(
        algorithm: &str,
        members: usize,
        change: Change,
        remapped: f64,
        collateral: f64,
        lookup_ns: f64,
    ) -> Record {
        Record {
            algorithm: algorithm.into(),
            fields: "l4".into(),
            hash: "xxh3".into(),
            members,
            change: change.name().into(),
            traffic: "uniform".into(),
            remapped,
            unavoidable: remapped - collateral,
            collateral,
            remapped_bytes: remapped,
            ideal: change.ideal(members),
            balance_max_over_mean: 1.02,
            balance_cv: 0.01,
            lookup_ns,
            build_us: 1.0,
            flows: 100_000,
        }
    }

    fn results(records: Vec<Record>) -> Results {
        Results {
            ecmpd_version: "test",
            flows: 100_000,
            seed: 1,
            params: SelectorParams::default(),
            symmetric: false,
            traffic: Vec::new(),
            records,
            hash_quality: Vec::new(),
            warnings: Vec::new(),
            elapsed_s: 0.0,
        }
    }

    /// A consistent algorithm at the minimum, one with collateral, and a
    /// consistent but slower one.
    fn sample() -> Results {
        let mut r = Vec::new();
        for n in [4usize, 8] {
            let ideal = 1.0 / n as f64;
            for (alg, ns) in [("resilient", 1.0), ("rendezvous", 9.0)] {
                r.push(record(alg, n, Change::Remove, ideal, 0.0, ns));
                r.push(record(alg, n, Change::Add, Change::Add.ideal(n), 0.0, ns));
                r.push(record(alg, n, Change::Flap, ideal, 0.0, ns));
            }
            let modulo = (n as f64 - 1.0) / n as f64;
            r.push(record(
                "modulo",
                n,
                Change::Remove,
                modulo,
                modulo - ideal,
                1.0,
            ));
            r.push(record("modulo", n, Change::Add, 0.8, 0.8, 1.0));
            r.push(record(
                "modulo",
                n,
                Change::Flap,
                modulo,
                modulo - ideal,
                1.0,
            ));
        }
        results(r)
    }

    #[test]
    fn the_verdict_picks_no_collateral_first_then_the_cheaper_lookup() {
        let res = sample();
        let reference = Reference::of(&res).unwrap();
        assert_eq!(reference.members, 8);
        let v = verdict(&res, &reference);
        assert_eq!(v.pick.as_deref(), Some("resilient"));
        assert!(
            v.sentences[0].starts_with("Pick resilient"),
            "{:?}",
            v.sentences
        );
        assert!(
            v.sentences.iter().any(|s| s.starts_with("Avoid modulo")),
            "{:?}",
            v.sentences
        );
        let order: Vec<String> = standings(&res, &reference)
            .into_iter()
            .map(|s| s.algorithm)
            .collect();
        assert_eq!(order, ["resilient", "rendezvous", "modulo"]);
    }

    #[test]
    fn collateral_on_removal_disqualifies_even_a_fast_algorithm() {
        let mut res = sample();
        for r in res
            .records
            .iter_mut()
            .filter(|r| r.algorithm == "resilient" && r.change == "remove")
        {
            r.collateral = 0.02;
        }
        let reference = Reference::of(&res).unwrap();
        assert_eq!(
            verdict(&res, &reference).pick.as_deref(),
            Some("rendezvous")
        );
    }

    #[test]
    fn the_random_floor_shrinks_with_more_flows() {
        assert!(random_floor(64, 100_000) > random_floor(64, 1_000_000));
        assert!((random_floor(64, 100_000) - 1.073).abs() < 0.005);
        assert_eq!(random_floor(1, 10), 1.0);
    }
}
