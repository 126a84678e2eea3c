//! The model graph: edges from each model to the models it reads, a deterministic topological
//! order, and dbt-style selection.
//!
//! Selection is a comma-separated list of terms: `name` (just that model), `name+` (it and every
//! model downstream), `+name` (it and every model upstream), `+name+` (both), or `marts`,
//! `intermediate`, `staging` (a whole layer). No selection means every model.

use super::model::{Layer, Model};
use crate::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};

/// Models in dependency order with their edges.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Models, upstream before downstream (ties broken by layer then name).
    pub models: Vec<Model>,
    /// Model → models it reads.
    pub upstream: BTreeMap<String, BTreeSet<String>>,
    /// Model → staging tables (pipelines) it reads.
    pub sources: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Builds the graph; every table a model reads must be a model or one of `tables`.
    pub fn new(models: Vec<Model>, tables: &BTreeSet<String>) -> Result<Self> {
        let names: BTreeSet<String> = models.iter().map(|m| m.name.clone()).collect();
        let mut upstream = BTreeMap::new();
        let mut sources = BTreeMap::new();
        for m in &models {
            let mut ups = BTreeSet::new();
            let mut srcs = BTreeSet::new();
            for t in &m.reads {
                if names.contains(t) {
                    ups.insert(t.clone());
                } else if tables.contains(t) {
                    srcs.insert(t.clone());
                } else {
                    return Err(Error::config(
                        &m.path,
                        format!("reads '{t}', which is neither a model nor a staging table of a pipeline"),
                    ));
                }
            }
            if ups.contains(&m.name) {
                return Err(Error::config(&m.path, "a model cannot read itself"));
            }
            upstream.insert(m.name.clone(), ups);
            sources.insert(m.name.clone(), srcs);
        }
        // Kahn's algorithm with a sorted ready set: the same order on every run.
        let mut remaining: BTreeMap<String, BTreeSet<String>> = upstream.clone();
        let by_name: BTreeMap<String, Model> = models.into_iter().map(|m| (m.name.clone(), m)).collect();
        let mut ordered = Vec::with_capacity(by_name.len());
        loop {
            let mut ready: Vec<&Model> =
                remaining.iter().filter(|(_, ups)| ups.is_empty()).map(|(n, _)| &by_name[n]).collect();
            if ready.is_empty() {
                break;
            }
            ready.sort_by(|a, b| (a.layer, &a.name).cmp(&(b.layer, &b.name)));
            let done: Vec<String> = ready.iter().map(|m| m.name.clone()).collect();
            ordered.extend(ready.into_iter().cloned());
            for n in &done {
                remaining.remove(n);
            }
            for ups in remaining.values_mut() {
                for n in &done {
                    ups.remove(n);
                }
            }
        }
        if !remaining.is_empty() {
            let cycle: Vec<&str> = remaining.keys().map(String::as_str).collect();
            return Err(Error::config("sql", format!("models read each other in a cycle: {}", cycle.join(", "))));
        }
        for m in &ordered {
            for up in &upstream[&m.name] {
                let up_layer = by_name[up].layer;
                if up_layer > m.layer {
                    return Err(Error::config(
                        &m.path,
                        format!("a {:?} model cannot read the {:?} model '{up}'", m.layer, up_layer),
                    ));
                }
            }
        }
        Ok(Self { models: ordered, upstream, sources })
    }

    pub fn get(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    fn walk(&self, start: &str, down: bool, into: &mut BTreeSet<String>) {
        let next: Vec<String> = if down {
            self.upstream.iter().filter(|(_, ups)| ups.contains(start)).map(|(n, _)| n.clone()).collect()
        } else {
            self.upstream.get(start).map(|u| u.iter().cloned().collect()).unwrap_or_default()
        };
        for n in next {
            if into.insert(n.clone()) {
                self.walk(&n, down, into);
            }
        }
    }

    /// The models a selection names, in graph order.
    pub fn select(&self, selection: Option<&str>) -> Result<Vec<&Model>> {
        let Some(selection) = selection.filter(|s| !s.trim().is_empty()) else {
            return Ok(self.models.iter().collect());
        };
        let mut chosen = BTreeSet::new();
        for term in selection.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let layer = Layer::ALL.iter().find(|(_, folder)| *folder == term).map(|(l, _)| *l);
            if let Some(layer) = layer {
                chosen.extend(self.models.iter().filter(|m| m.layer == layer).map(|m| m.name.clone()));
                continue;
            }
            let (up, rest) = term.strip_prefix('+').map_or((false, term), |r| (true, r));
            let (down, name) = rest.strip_suffix('+').map_or((false, rest), |r| (true, r));
            if self.get(name).is_none() {
                let known: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
                return Err(Error::config(
                    "--select",
                    format!("no model named '{name}' (known: {})", known.join(", ")),
                ));
            }
            chosen.insert(name.to_string());
            if up {
                self.walk(name, false, &mut chosen);
            }
            if down {
                self.walk(name, true, &mut chosen);
            }
        }
        Ok(self.models.iter().filter(|m| chosen.contains(&m.name)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::model::ModelSpec;

    fn model(name: &str, layer: Layer, reads: &[&str]) -> Model {
        Model {
            name: name.into(),
            layer,
            path: format!("sql/{name}.sql").into(),
            sql: String::new(),
            reads: reads.iter().map(|s| s.to_string()).collect(),
            spec: ModelSpec::default(),
        }
    }

    fn graph() -> Graph {
        let tables: BTreeSet<String> = ["raw_a", "raw_b"].iter().map(|s| s.to_string()).collect();
        Graph::new(
            vec![
                model("mart_y", Layer::Mart, &["int_x", "stg_b"]),
                model("int_x", Layer::Intermediate, &["stg_a", "stg_b"]),
                model("stg_b", Layer::Staging, &["raw_b"]),
                model("stg_a", Layer::Staging, &["raw_a"]),
                model("mart_z", Layer::Mart, &["stg_a"]),
            ],
            &tables,
        )
        .unwrap()
    }

    fn names(ms: Vec<&Model>) -> Vec<&str> {
        ms.into_iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn order_is_topological_and_stable() {
        let g = graph();
        let order: Vec<&str> = g.models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(order, ["stg_a", "stg_b", "int_x", "mart_z", "mart_y"]);
        assert_eq!(g.sources["stg_a"].iter().collect::<Vec<_>>(), ["raw_a"]);
    }

    #[test]
    fn selections() {
        let g = graph();
        assert_eq!(names(g.select(Some("mart_y")).unwrap()), ["mart_y"]);
        assert_eq!(names(g.select(Some("+mart_y")).unwrap()), ["stg_a", "stg_b", "int_x", "mart_y"]);
        assert_eq!(names(g.select(Some("stg_a+")).unwrap()), ["stg_a", "int_x", "mart_z", "mart_y"]);
        assert_eq!(names(g.select(Some("marts")).unwrap()), ["mart_z", "mart_y"]);
        assert_eq!(g.select(None).unwrap().len(), 5);
        assert!(g.select(Some("nope")).unwrap_err().to_string().contains("no model named 'nope'"));
    }

    #[test]
    fn unknown_tables_cycles_and_backward_layers_are_errors() {
        let none = BTreeSet::new();
        let err = Graph::new(vec![model("stg_a", Layer::Staging, &["missing"])], &none).unwrap_err();
        assert!(err.to_string().contains("reads 'missing'"));
        let cycle = Graph::new(
            vec![model("int_a", Layer::Intermediate, &["int_b"]), model("int_b", Layer::Intermediate, &["int_a"])],
            &none,
        )
        .unwrap_err();
        assert!(cycle.to_string().contains("cycle"));
        let back =
            Graph::new(vec![model("stg_a", Layer::Staging, &["mart_b"]), model("mart_b", Layer::Mart, &[])], &none)
                .unwrap_err();
        assert!(back.to_string().contains("cannot read"));
    }
}
