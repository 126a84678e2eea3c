use super::*;
use datafusion::arrow::array::{Array, AsArray, Float64Array, StringArray};
use datafusion::arrow::datatypes::Float64Type;

/// One alliance-quarter of `mart_waits_by_group`: IMD quintiles and ethnicity groups of the same
/// 127 patients, as in the issue that found the old suppression recoverable.
fn waits() -> (Arc<Schema>, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("dimension", DataType::Utf8, false),
        Field::new("group_value", DataType::Utf8, false),
        Field::new("total", DataType::Float64, true),
        Field::new("within_standard", DataType::Float64, true),
        Field::new("breaches", DataType::Float64, true),
        Field::new("performance", DataType::Float64, true),
    ]));
    type Row = (&'static str, &'static str, f64, f64);
    let rows: [Row; 11] = [
        ("imd", "1", 40.0, 30.0),
        ("imd", "2", 30.0, 20.0),
        ("imd", "3", 25.0, 20.0),
        ("imd", "4", 20.0, 15.0),
        ("imd", "5", 12.0, 7.0),
        ("ethnicity", "Asian", 30.0, 25.0),
        ("ethnicity", "Black", 25.0, 20.0),
        ("ethnicity", "Mixed", 10.0, 5.0),
        ("ethnicity", "Not stated", 7.0, 7.0),
        ("ethnicity", "Other", 3.0, 2.0),
        ("ethnicity", "White", 52.0, 33.0),
    ];
    let f = |g: &dyn Fn(&Row) -> f64| Arc::new(Float64Array::from_iter_values(rows.iter().map(g)));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            f(&|r| r.2),
            f(&|r| r.3),
            f(&|r| r.2 - r.3),
            f(&|r| r.3 / r.2),
        ],
    )
    .unwrap();
    (schema, batch)
}

fn spec(toml_text: &str) -> DisclosureSpec {
    toml::from_str(toml_text).unwrap()
}

const WAITS: &str = r#"
counts = ["total", "within_standard", "breaches"]
dependent = ["performance"]
[[identities]]
total = "total"
parts = ["within_standard", "breaches"]
[[partitions]]
within = []
by = "dimension"
"#;

fn column(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    b.column_by_name(name).unwrap().as_primitive::<Float64Type>().iter().collect()
}

#[test]
fn a_withheld_group_cannot_be_rebuilt_from_another_dimension() {
    let (schema, batch) = waits();
    let (out, audit) = spec(WAITS).apply("mart_waits_by_group", schema, &[batch]).unwrap();
    let total = column(&out, "total");
    // "Other" (3) and its whole row are withheld, and so is another ethnicity row: the IMD
    // quintiles publish the population, so a single withheld row would be that total minus
    // the other rows.
    assert!(total[9].is_none());
    let withheld_rows = total.iter().filter(|t| t.is_none()).count();
    assert!(withheld_rows >= 2, "{total:?}");
    // Whole identities only: never a total without its parts or the reverse.
    for row in 0..out.num_rows() {
        let nulls: Vec<bool> = ["total", "within_standard", "breaches"]
            .iter()
            .map(|c| out.column_by_name(c).unwrap().is_null(row))
            .collect();
        assert!(nulls.iter().all(|n| *n) || nulls.iter().all(|n| !*n), "row {row}: {nulls:?}");
        assert_eq!(out.column_by_name("performance").unwrap().is_null(row), nulls[0]);
        assert_eq!(out.column_by_name("suppressed").unwrap().as_boolean().value(row), nulls[0]);
    }
    // Only "Other" is small. "Not stated" (the smallest row that can hide its total) goes with
    // it; its breaches are 0, so "Mixed" (breaches 5) goes too, or the breaches of the withheld
    // rows would be known to add up to 1. The three rows' breaches add up to 6.
    assert_eq!(withheld_rows, 3, "{total:?}");
    assert!(total[7].is_none() && total[8].is_none());
    assert_eq!((audit.primary, audit.withheld), (3, 9), "{audit:?}");
    assert_eq!(audit.min_protection_range, Some(6.0), "{audit:?}");
}

#[test]
fn nothing_small_means_nothing_withheld() {
    let (schema, batch) = waits();
    let big: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Float64 => {
                let v = c.as_primitive::<Float64Type>();
                Arc::new(Float64Array::from_iter_values(v.values().iter().map(|x| x * 10.0))) as ArrayRef
            }
            _ => c.clone(),
        })
        .collect();
    // Within ten times, breaches ten times: 7 − 7 = 0 breaches stays zero, which is published.
    let batch = RecordBatch::try_new(schema.clone(), big).unwrap();
    let (out, audit) = spec(WAITS).apply("m", schema, &[batch]).unwrap();
    assert_eq!(audit.withheld, 0);
    assert_eq!(out.column_by_name("suppressed").unwrap().as_boolean().true_count(), 0);
}

#[test]
fn a_declared_structure_that_does_not_hold_is_an_error() {
    let (schema, batch) = waits();
    let wrong = WAITS.replace("parts = [\"within_standard\", \"breaches\"]", "parts = [\"within_standard\"]");
    let e = spec(&wrong).apply("mart_x", schema, &[batch]).unwrap_err().to_string();
    assert!(e.contains("mart_x") && e.contains("identity total = within_standard"), "{e}");
    assert!(!e.contains("127") && !e.contains("52"), "no values in the message: {e}");
}

#[test]
fn unknown_columns_are_reported() {
    let (schema, batch) = waits();
    let e = spec("counts = [\"nope\"]").apply("m", schema, &[batch]).unwrap_err().to_string();
    assert!(e.contains("'nope'"), "{e}");
}

#[test]
fn incomplete_sums_and_copies() {
    // Backlog-like rows: open ≥ over 62 = 63–103 + 104+; the second row copies the first row's
    // over-62 count as a baseline.
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Utf8, false),
        Field::new("base_k", DataType::Utf8, false),
        Field::new("open", DataType::Float64, true),
        Field::new("over", DataType::Float64, true),
        Field::new("mid", DataType::Float64, true),
        Field::new("long", DataType::Float64, true),
        Field::new("baseline", DataType::Float64, true),
    ]));
    let f = |v: [f64; 2]| Arc::new(Float64Array::from(v.to_vec())) as ArrayRef;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a", "b"])),
            Arc::new(StringArray::from(vec!["a", "a"])),
            f([40.0, 50.0]),
            f([3.0, 20.0]),
            f([3.0, 12.0]),
            f([0.0, 8.0]),
            f([3.0, 3.0]),
        ],
    )
    .unwrap();
    let toml_text = r#"
counts = ["open", "over", "mid", "long", "baseline"]
[[identities]]
total = "over"
parts = ["mid", "long"]
[[identities]]
total = "open"
parts = ["over"]
complete = false
[[hierarchies]]
name = "baseline copies the base row"
parent = { key = "base_k" }
child = { key = "k" }
columns = [["baseline", "over"]]
"#;
    let (out, audit) = spec(toml_text).apply("m", schema, &[batch]).unwrap();
    // Row a: over 3 (and mid 3) withheld; the copy of it on row b is withheld too, and the
    // zero beside them, but open (40 ≥ 3) stays.
    assert_eq!(column(&out, "over"), [None, Some(20.0)]);
    assert_eq!(column(&out, "baseline"), [None, None]);
    assert_eq!(column(&out, "long"), [None, Some(8.0)]);
    assert_eq!(column(&out, "open"), [Some(40.0), Some(50.0)]);
    assert!(audit.min_protection_range.unwrap() >= 5.0, "{audit:?}");
}
