//! Disclosure control on random tables: random patients, each in one IMD quintile and one
//! ethnicity group, counted in the shape of `mart_waits_by_group` (two breakdowns of the same
//! patients per alliance and quarter, within + breaches = total), suppressed with the mart's own
//! `[disclosure]` declaration, then attacked with the independent attacker of `tests/attacker`.

mod attacker;
mod common;

use alliance_warehouse::transform::model::ModelSpec;
use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use attacker::{Attack, Published};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A patient: group (alliance × quarter), quintile, ethnicity, within the standard.
type Patient = (u8, u8, u8, bool);

fn table(patients: &[Patient]) -> (Arc<Schema>, RecordBatch) {
    // (group, dimension, value) → (total, within)
    let mut cells: BTreeMap<(u8, &str, String), (f64, f64)> = BTreeMap::new();
    let ethnicity = ["Asian", "Black", "Mixed", "Not stated", "Other", "White"];
    for &(group, quintile, eth, within) in patients {
        for key in [
            (group, "imd_quintile", (quintile + 1).to_string()),
            (group, "ethnicity_group", ethnicity[eth as usize].to_string()),
        ] {
            let e = cells.entry(key).or_default();
            e.0 += 1.0;
            e.1 += within as u8 as f64;
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("alliance", DataType::Utf8, false),
        Field::new("quarter", DataType::Utf8, false),
        Field::new("standard", DataType::Utf8, false),
        Field::new("dimension", DataType::Utf8, false),
        Field::new("group_value", DataType::Utf8, false),
        Field::new("total", DataType::Float64, true),
        Field::new("within_standard", DataType::Float64, true),
        Field::new("breaches", DataType::Float64, true),
        Field::new("performance", DataType::Float64, true),
        Field::new("performance_lower_95", DataType::Float64, true),
        Field::new("performance_upper_95", DataType::Float64, true),
    ]));
    let text = |f: &dyn Fn(&(u8, &str, String)) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(cells.keys().map(f)))
    };
    let num = |f: &dyn Fn(&(f64, f64)) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(cells.values().map(f)))
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            text(&|k| ["North Central London", "North East London"][(k.0 % 2) as usize].to_string()),
            text(&|k| format!("2024-0{}-01", 1 + 3 * (k.0 / 2))),
            text(&|_| "28-day FDS".to_string()),
            text(&|k| k.1.to_string()),
            text(&|k| k.2.clone()),
            num(&|v| v.0),
            num(&|v| v.1),
            num(&|v| v.0 - v.1),
            num(&|v| v.1 / v.0),
            num(&|v| v.1 / v.0 - 0.1),
            num(&|v| v.1 / v.0 + 0.1),
        ],
    )
    .unwrap();
    (schema, batch)
}

fn patients() -> impl Strategy<Value = Vec<Patient>> {
    // Skewed categories make small cells common: most patients in a few quintiles and groups.
    let skewed = |n: u8| prop_oneof![4 => Just(0u8), 2 => Just(1u8), 1 => 0..n];
    prop::collection::vec((0u8..3, skewed(5), skewed(6), any::<bool>()), 1..400)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn no_withheld_cell_of_a_random_table_can_be_narrowed(patients in patients()) {
        let spec: ModelSpec = alliance_warehouse::config::read_toml(&common::repo().join("sql/marts/mart_waits_by_group.toml")).unwrap();
        let disclosure = spec.disclosure.expect("the mart declares disclosure control");
        let (schema, batch) = table(&patients);
        let (out, audit) = disclosure.apply("mart_waits_by_group", schema, &[batch]).unwrap();
        let mut published = Published::default();
        published.add("mart_waits_by_group", out);
        for row in 0..published.rows("mart_waits_by_group") {
            let cells: Vec<Option<f64>> = ["total", "within_standard", "breaches"]
                .iter()
                .map(|c| published.num("mart_waits_by_group", row, c))
                .collect();
            prop_assert!(cells.iter().flatten().all(|v| *v == 0.0 || *v >= 5.0), "row {row}: {cells:?}");
            prop_assert!(cells.iter().all(|c| c.is_some()) || cells.iter().all(|c| c.is_none()), "row {row}: {cells:?}");
        }
        let mut attack = Attack::default();
        attacker::knowledge::everything(&published, &mut attack);
        let exposures = attack.run();
        prop_assert_eq!(exposures.len(), audit.withheld);
        for e in exposures {
            prop_assert!(e.upper - e.lower >= 5.0 - 1e-6, "{} lies in [{}, {}]", e.cell, e.lower, e.upper);
        }
    }
}
