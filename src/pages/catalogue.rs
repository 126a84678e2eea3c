//! `alliance docs`: the catalogue. Every pipeline (source, format, load, schedule, column
//! contract), every model and mart (layer, grain, description, columns with their types as built,
//! data tests, disclosure rules), the lineage graph from landing sources to marts, and the last
//! run that built each model.

use super::page;
use super::svg::escape;
use crate::error::Result;
use crate::jobs::JobContext;
use crate::transform::graph::Graph;
use crate::transform::model::Layer;
use datafusion::prelude::SessionContext;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The catalogue as one self-contained HTML page.
pub async fn catalogue(ctx: &JobContext, graph: &Graph, session: &SessionContext) -> Result<String> {
    let mut body = String::from("<h1>alliance-warehouse catalogue</h1>");
    let _ = write!(
        body,
        "<p class=\"lede\">{} pipelines, {} models ({} marts). Marts are Parquet files under <code>{}/marts/</code>.</p>",
        ctx.pipelines.len(),
        graph.models.len(),
        graph.models.iter().filter(|m| m.layer == Layer::Mart).count(),
        escape(ctx.stores.warehouse.url())
    );
    body.push_str("<h2>Lineage</h2>");
    body.push_str(&lineage(ctx, graph));
    let runs = crate::schedule::status::runs(&ctx.stores.warehouse).await?;
    let mut last_built: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut last_audit: BTreeMap<String, crate::transform::disclosure::Audit> = BTreeMap::new();
    for r in runs.iter().rev() {
        for m in r.record.build["models"].as_array().into_iter().flatten() {
            if let (Some(name), Some(status)) = (m["model"].as_str(), m["status"].as_str()) {
                last_built.insert(name.to_string(), (r.record.run_id.clone(), status.to_string()));
                if let Ok(audit) = serde_json::from_value(m["disclosure"].clone()) {
                    last_audit.insert(name.to_string(), audit);
                }
            }
        }
    }
    body.push_str("<h2>Marts and models</h2>");
    for layer in [Layer::Mart, Layer::Intermediate, Layer::Staging] {
        for m in graph.models.iter().filter(|m| m.layer == layer) {
            let _ = write!(body, "<h3 id=\"{0}\">{0}</h3><p>{1}</p>", escape(&m.name), escape(&m.spec.description));
            let _ = write!(
                body,
                "<p><b>Layer</b> {:?}. <b>Grain</b> {}. <b>Reads</b> {}.",
                m.layer,
                escape(&m.spec.grain),
                escape(&m.reads.join(", "))
            );
            match last_built.get(&m.name) {
                Some((run, status)) => {
                    let _ = write!(body, " <b>Last run</b> {} ({}).</p>", escape(run), escape(status));
                }
                None => body.push_str(" <b>Last run</b> never built.</p>"),
            }
            columns(session, m, &mut body).await;
            if !m.spec.tests.is_empty() {
                body.push_str("<p><b>Data tests</b>: ");
                body.push_str(
                    &m.spec
                        .tests
                        .iter()
                        .map(|t| format!("<code>{}</code>", escape(&t.name())))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
                body.push_str("</p>");
            }
            if let Some(d) = &m.spec.disclosure {
                disclosure_section(&mut body, d);
                if let Some(a) = last_audit.get(&m.name) {
                    let range = a.min_protection_range.map_or("unbounded".to_string(), |r| format!("{r:.1}"));
                    let _ = write!(
                        body,
                        "<p><b>Last audit</b>: {} of {} counts withheld ({} small, {} to protect them) on {} rows; \
                         narrowest range an attacker can reach for a withheld count: {range}.</p>",
                        a.withheld, a.cells, a.primary, a.secondary, a.rows_suppressed
                    );
                }
            }
        }
    }
    body.push_str("<h2>Pipelines</h2>");
    for p in &ctx.pipelines {
        let _ = write!(
            body,
            "<h3 id=\"{0}\">{0}</h3><p>{1}</p><p><b>Source</b> <code>{2}</code> ({3:?}). <b>Load</b> {4:?}{5}. <b>Schedule</b> {6}{7}.</p>",
            escape(&p.name),
            escape(&p.description),
            escape(&p.source.glob),
            p.source.format,
            p.load.mode,
            p.load.period.as_ref().map(|x| format!(" by {x}")).unwrap_or_default(),
            escape(p.schedule.cron.as_deref().unwrap_or("no cron")),
            if p.schedule.on_new_file { ", and on new files" } else { "" }
        );
        body.push_str("<table><tr><th>column</th><th>type</th><th>source headers</th><th>description</th></tr>");
        for c in &p.columns {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{:?}{}</td><td>{}</td><td>{}</td></tr>",
                escape(&c.name),
                c.kind,
                if c.nullable { "" } else { ", required" },
                escape(&c.aliases.join(", ")),
                escape(&c.description)
            );
        }
        for d in &p.derived {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{:?} (derived from {:?})</td><td></td><td>{}</td></tr>",
                escape(&d.name),
                d.kind,
                d.from,
                escape(&d.description)
            );
        }
        body.push_str("</table>");
    }
    Ok(page("alliance-warehouse catalogue", &body))
}

/// The columns of a model as built (type from the session), with their documented meaning.
async fn columns(session: &SessionContext, m: &crate::transform::model::Model, body: &mut String) {
    let docs: BTreeMap<&str, &str> = m.spec.columns.iter().map(|c| (c.name.as_str(), c.description.as_str())).collect();
    let Ok(table) = session.table(m.name.as_str()).await else {
        body.push_str("<p class=\"muted\">Not built yet: columns unknown.</p>");
        return;
    };
    body.push_str("<table><tr><th>column</th><th>type</th><th>description</th></tr>");
    for f in table.schema().fields() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(f.name()),
            escape(&f.data_type().to_string()),
            escape(docs.get(f.name().as_str()).copied().unwrap_or(""))
        );
    }
    body.push_str("</table>");
}

/// Sources → staging → intermediate → marts, as an SVG of four columns with edges.
fn lineage(ctx: &JobContext, graph: &Graph) -> String {
    let used: Vec<String> = ctx
        .pipelines
        .iter()
        .map(|p| p.table.clone())
        .filter(|t| graph.sources.values().any(|s| s.contains(t)))
        .collect();
    let columns: Vec<Vec<String>> = vec![
        used,
        graph.models.iter().filter(|m| m.layer == Layer::Staging).map(|m| m.name.clone()).collect(),
        graph.models.iter().filter(|m| m.layer == Layer::Intermediate).map(|m| m.name.clone()).collect(),
        graph.models.iter().filter(|m| m.layer == Layer::Mart).map(|m| m.name.clone()).collect(),
    ];
    let rows = columns.iter().map(Vec::len).max().unwrap_or(1) as f64;
    let (width, row_h, box_w) = (960.0, 26.0, 200.0);
    let height = rows * row_h + 40.0;
    let mut position: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut boxes = String::new();
    for (c, names) in columns.iter().enumerate() {
        let x = 10.0 + c as f64 * (width - box_w - 20.0) / 3.0;
        let offset = (rows - names.len() as f64) * row_h / 2.0;
        for (r, name) in names.iter().enumerate() {
            let y = 30.0 + offset + r as f64 * row_h;
            position.insert(name.as_str(), (x, y));
            let fill = ["#e8edee", "#d0e7f7", "#b3d7f2", "#41b6e6"][c];
            let (label, tx, ty) = (escape(name), x + 6.0, y + 14.0);
            let _ = write!(
                boxes,
                r##"<a href="#{label}"><rect x="{x:.0}" y="{y:.0}" width="{box_w}" height="20" rx="3" fill="{fill}"/><text x="{tx:.0}" y="{ty:.0}" font-size="11">{label}</text></a>"##
            );
        }
    }
    let mut edges = String::new();
    for m in &graph.models {
        let Some(&(tx, ty)) = position.get(m.name.as_str()) else { continue };
        for from in graph.upstream[&m.name].iter().chain(graph.sources[&m.name].iter()) {
            if let Some(&(fx, fy)) = position.get(from.as_str()) {
                let _ = write!(
                    edges,
                    r##"<line x1="{:.0}" y1="{:.0}" x2="{tx:.0}" y2="{:.0}" stroke="#768692" stroke-width="1"/>"##,
                    fx + box_w,
                    fy + 10.0,
                    ty + 10.0
                );
            }
        }
    }
    let heads = ["staging tables", "staging models", "intermediate", "marts"]
        .iter()
        .enumerate()
        .map(|(c, h)| {
            format!(
                r##"<text x="{:.0}" y="18" font-size="12" font-weight="bold">{h}</text>"##,
                10.0 + c as f64 * (width - box_w - 20.0) / 3.0
            )
        })
        .collect::<String>();
    format!(
        r#"<svg viewBox="0 0 {width} {height:.0}" role="img" aria-label="lineage graph">{heads}{edges}{boxes}</svg>"#
    )
}

/// The disclosure policy of a mart: plain words, threshold, protection width and the declared
/// structure the audit checks.
fn disclosure_section(body: &mut String, d: &crate::transform::disclosure::DisclosureSpec) {
    let _ = write!(
        body,
        "<p><b>Disclosure control</b>: {} Counts {} are withheld from 1 to {}; every withheld count must keep a \
         feasible range of at least {} given everything published (LP audit). Dependent values withheld with them: {}.",
        escape(&d.policy),
        escape(&d.counts.join(", ")),
        d.threshold - 1.0,
        d.protection,
        escape(&d.dependent.join(", ")),
    );
    let mut structure: Vec<String> = Vec::new();
    for i in &d.identities {
        let sign = if i.complete { "=" } else { "≥" };
        structure.push(format!("{} {sign} {}", i.total, i.parts.join(" + ")));
    }
    for p in &d.partitions {
        structure.push(format!("each {} partitions the same population within {}", p.by, p.within.join(", ")));
    }
    for h in &d.hierarchies {
        structure.push(format!("hierarchy {}", h.name));
    }
    for s in &d.same_value {
        structure.push(format!("one {} within {}", s.column, s.within.join(", ")));
    }
    if !structure.is_empty() {
        let _ = write!(body, " Declared structure: {}.", escape(&structure.join("; ")));
    }
    body.push_str("</p>");
}
