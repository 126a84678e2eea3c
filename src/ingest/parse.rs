//! Vectorised value parsers: each turns one raw text column (an Arrow `StringArray` of one
//! batch) into a typed Arrow array plus the list of rows whose value could not be parsed.
//!
//! The kernels walk the array's value buffer as `&str` slices and append to typed builders: no
//! per-row `String` is allocated except to describe a rejected value. Semantics per type are those
//! of [`ColumnType`]; null tokens are compared trimmed and case-insensitively.

use super::dates::{self, DEFAULT_DATE_FORMATS, DEFAULT_MONTH_FORMATS};
use super::nhs::{self, Pseudonymiser, PSEUDONYM_BYTES};
use crate::config::pipeline::{BarePercent, ColumnType, DateFormat, Vocabulary};
use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Date32Builder, FixedSizeBinaryBuilder, Float64Builder, Int64Builder, StringArray,
    StringBuilder,
};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::DataType;
use std::sync::Arc;

/// A rejected value: row index within the batch and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub row: usize,
    pub reason: String,
}

/// Parsed column of one batch.
pub struct Parsed {
    pub array: ArrayRef,
    pub rejections: Vec<Rejection>,
}

/// Null tokens, pre-processed for a fast reject: a value longer than every token, or whose first
/// byte starts no token (in either case), is not compared with the tokens at all.
#[derive(Debug, Clone)]
pub struct NullTokens {
    tokens: Vec<String>,
    max_len: usize,
    first_bytes: [bool; 256],
}

impl NullTokens {
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a String>) -> Self {
        let tokens: Vec<String> = tokens.into_iter().map(|t| t.trim().to_string()).collect();
        let max_len = tokens.iter().map(String::len).max().unwrap_or(0);
        let mut first_bytes = [false; 256];
        for b in tokens.iter().filter_map(|t| t.bytes().next()) {
            first_bytes[b.to_ascii_lowercase() as usize] = true;
            first_bytes[b.to_ascii_uppercase() as usize] = true;
        }
        Self { tokens, max_len, first_bytes }
    }

    /// True if the trimmed value is a null token.
    #[inline]
    pub fn is_null(&self, trimmed: &str) -> bool {
        let Some(&first) = trimmed.as_bytes().first() else { return true };
        trimmed.len() <= self.max_len
            && self.first_bytes[first as usize]
            && self.tokens.iter().any(|t| t.eq_ignore_ascii_case(trimmed))
    }
}

/// How one column is parsed.
pub struct ColumnParser {
    pub kind: ColumnType,
    pub formats: Vec<DateFormat>,
    pub bare_percent: BarePercent,
    pub nulls: NullTokens,
    pub recode: Vec<(String, String)>,
    pub accepted: Vec<String>,
    pub nullable: bool,
    pub pseudonymiser: Option<Arc<Pseudonymiser>>,
    /// National vocabulary the (recoded) values are mapped through; an unmapped value is
    /// rejected ([`crate::config::vocabulary`]).
    pub vocabulary: Option<Arc<Vocabulary>>,
}

/// Arrow type a column type is stored as.
pub fn arrow_type(kind: ColumnType) -> DataType {
    match kind {
        ColumnType::String | ColumnType::Code | ColumnType::FinancialYear => DataType::Utf8,
        ColumnType::NhsNumber => DataType::FixedSizeBinary(PSEUDONYM_BYTES as i32),
        ColumnType::Integer => DataType::Int64,
        ColumnType::Number | ColumnType::Count | ColumnType::Percent => DataType::Float64,
        ColumnType::Date | ColumnType::Month => DataType::Date32,
        ColumnType::Boolean => DataType::Boolean,
    }
}

impl ColumnParser {
    /// Parses a whole column. `input` must be Utf8.
    pub fn parse(&self, input: &StringArray) -> Parsed {
        if let Some(array) = self.pass_through(input) {
            return Parsed { array, rejections: vec![] };
        }
        let mut rejections = Vec::new();
        let array: ArrayRef = match self.kind {
            ColumnType::NhsNumber => {
                let mut b = FixedSizeBinaryBuilder::with_capacity(input.len(), PSEUDONYM_BYTES as i32);
                let key = self.pseudonymiser.as_deref();
                self.each(input, &mut rejections, |v| match v {
                    Some(v) => {
                        let key = key.ok_or("no pseudonymisation key configured")?;
                        let digits = nhs::validate(v)?;
                        super::plausibility::nhs_number_plausible(&digits)?;
                        let pseudonym = key.pseudonym(&digits);
                        b.append_value(pseudonym).map_err(|e| e.to_string())
                    }
                    None => {
                        b.append_null();
                        Ok(())
                    }
                });
                Arc::new(b.finish())
            }
            ColumnType::String | ColumnType::Code | ColumnType::FinancialYear => {
                let mut b = StringBuilder::with_capacity(input.len(), input.value_data().len());
                let mut scratch = String::new();
                self.each(input, &mut rejections, |v| match v {
                    Some(v) => self.text(v, &mut scratch).map(|s| b.append_value(s)),
                    None => {
                        b.append_null();
                        Ok(())
                    }
                });
                Arc::new(b.finish())
            }
            ColumnType::Integer => {
                let mut b = Int64Builder::with_capacity(input.len());
                self.each(input, &mut rejections, |v| match v {
                    Some(v) => parse_integer(v).map(|x| b.append_value(x)),
                    None => {
                        b.append_null();
                        Ok(())
                    }
                });
                Arc::new(b.finish())
            }
            ColumnType::Number | ColumnType::Count | ColumnType::Percent => {
                let mut b = Float64Builder::with_capacity(input.len());
                self.each(input, &mut rejections, |v| match v {
                    Some(v) => self.float(v).map(|x| b.append_value(x)),
                    None => {
                        b.append_null();
                        Ok(())
                    }
                });
                Arc::new(b.finish())
            }
            ColumnType::Date | ColumnType::Month => {
                let mut b = Date32Builder::with_capacity(input.len());
                self.each(input, &mut rejections, |v| match v {
                    Some(v) => self.date(v).map(|x| b.append_value(x)),
                    None => {
                        b.append_null();
                        Ok(())
                    }
                });
                Arc::new(b.finish())
            }
            ColumnType::Boolean => {
                let mut b = BooleanBuilder::with_capacity(input.len());
                self.each(input, &mut rejections, |v| match v {
                    Some(v) => parse_bool(v).map(|x| b.append_value(x)),
                    None => {
                        b.append_null();
                        Ok(())
                    }
                });
                Arc::new(b.finish())
            }
        };
        Parsed { array, rejections }
    }

    /// Text columns whose values need no change (already trimmed, no null token other than an
    /// empty cell, upper case for codes, no recoding, each value spelled exactly as one of the
    /// accepted values when there is a list) keep the source's value buffer: only the validity
    /// changes, so no value is copied. `None` when any value needs work (the general path then
    /// handles the column, and reports what is wrong).
    fn pass_through(&self, input: &StringArray) -> Option<ArrayRef> {
        let plain = matches!(self.kind, ColumnType::String | ColumnType::Code);
        if !plain || !self.recode.is_empty() || self.vocabulary.is_some() {
            return None;
        }
        // Codes must be upper case: one pass over all the text (bytes under nulls included,
        // which at worst sends the column down the general path).
        if self.kind == ColumnType::Code && has_ascii_lowercase(input.value_data()) {
            return None;
        }
        // `Some(present)` for a value kept as it is, `None` for one that needs work.
        let present = |row: usize| -> Option<bool> {
            let v = if input.is_null(row) { "" } else { input.value(row) };
            let b = v.as_bytes();
            match (b.first(), b.last()) {
                (None, _) | (_, None) => self.nullable.then_some(false),
                (Some(first), Some(last)) => (!(first.is_ascii_whitespace()
                    || last.is_ascii_whitespace()
                    || self.nulls.is_null(v)
                    || (!self.accepted.is_empty() && !self.accepted.iter().any(|a| a.as_bytes() == b))))
                .then_some(true),
            }
        };
        // Usually every value is kept and the nulls are the source's own (empty cells): the
        // array is kept as it is, and no validity is built.
        let mut same_nulls = true;
        for row in 0..input.len() {
            same_nulls &= present(row)? == input.is_valid(row);
        }
        if same_nulls {
            return Some(Arc::new(input.clone()));
        }
        let nulls = NullBuffer::new(BooleanBuffer::collect_bool(input.len(), |row| present(row) == Some(true)));
        let array = StringArray::try_new(input.offsets().clone(), input.values().clone(), Some(nulls)).ok()?;
        Some(Arc::new(array))
    }

    /// Parses a single value (derived columns): `Ok(None)` for a null token.
    pub fn parse_one(&self, value: &str) -> Result<ArrayRef, String> {
        let parsed = self.parse(&StringArray::from(vec![value]));
        match parsed.rejections.into_iter().next() {
            Some(r) => Err(r.reason),
            None => Ok(parsed.array),
        }
    }

    /// Drives one column: trims, applies recodes, null tokens, nullability and accepted values,
    /// then calls `append(Some(value))` for each present value and `append(None)` for each null
    /// or rejected value (so the output stays aligned with the input).
    #[inline]
    fn each(
        &self,
        input: &StringArray,
        rejections: &mut Vec<Rejection>,
        mut append: impl FnMut(Option<&str>) -> Result<(), String>,
    ) {
        let null = |append: &mut dyn FnMut(Option<&str>) -> Result<(), String>| {
            let _ = append(None);
        };
        for row in 0..input.len() {
            let raw = if input.is_null(row) { "" } else { trim(input.value(row)) };
            let value = self.recoded(raw);
            if self.nulls.is_null(value) {
                null(&mut append);
                if !self.nullable {
                    rejections.push(Rejection { row, reason: "required value is missing".into() });
                }
                continue;
            }
            let value = match &self.vocabulary {
                None => value,
                Some(vocabulary) => match vocabulary.lookup(value) {
                    Some(code) => code,
                    None => {
                        null(&mut append);
                        let reason = format!("vocabulary {}: no mapping for {}", vocabulary.name, self.shown(value));
                        rejections.push(Rejection { row, reason });
                        continue;
                    }
                },
            };
            if !self.accepted.is_empty() && !self.accepted.iter().any(|a| a.eq_ignore_ascii_case(value)) {
                null(&mut append);
                rejections.push(Rejection { row, reason: format!("not an accepted value: {}", self.shown(value)) });
                continue;
            }
            if let Err(reason) = append(Some(value)) {
                null(&mut append);
                rejections.push(Rejection { row, reason });
            }
        }
    }

    #[inline]
    fn recoded<'a>(&'a self, value: &'a str) -> &'a str {
        if self.recode.is_empty() {
            return value;
        }
        self.recode
            .iter()
            .find(|(from, _)| from.eq_ignore_ascii_case(value))
            .map(|(_, to)| to.as_str())
            .unwrap_or(value)
    }

    /// The value as it may appear in a message: never an NHS number.
    fn shown(&self, value: &str) -> String {
        if self.kind == ColumnType::NhsNumber || super::redact::could_be_identifier(value) {
            "(withheld)".into()
        } else {
            super::redact::excerpt(value)
        }
    }

    fn text<'a>(&self, v: &'a str, scratch: &'a mut String) -> Result<&'a str, String> {
        match self.kind {
            ColumnType::Code if v.bytes().any(|b| b.is_ascii_lowercase()) => {
                scratch.clear();
                scratch.push_str(v);
                scratch.make_ascii_uppercase();
                Ok(scratch.as_str())
            }
            ColumnType::FinancialYear => {
                *scratch = parse_financial_year(v)?;
                Ok(scratch.as_str())
            }
            _ => Ok(v),
        }
    }

    fn float(&self, v: &str) -> Result<f64, String> {
        match self.kind {
            ColumnType::Percent => {
                let (num, had_sign) = match v.strip_suffix('%') {
                    Some(n) => (n.trim_end(), true),
                    None => (v, false),
                };
                let x = parse_number(num).ok_or_else(|| format!("not a percentage: {}", self.shown(v)))?;
                Ok(if had_sign || self.bare_percent == BarePercent::Percent { x / 100.0 } else { x })
            }
            ColumnType::Count => {
                let x = parse_number(v).ok_or_else(|| format!("not a count: {}", self.shown(v)))?;
                if x < 0.0 || (x * 2.0).fract() != 0.0 {
                    return Err(format!("not a count in halves: {}", self.shown(v)));
                }
                Ok(x)
            }
            _ => parse_number(v).ok_or_else(|| format!("not a number: {}", self.shown(v))),
        }
    }

    fn date(&self, v: &str) -> Result<i32, String> {
        let defaults = if self.kind == ColumnType::Month { DEFAULT_MONTH_FORMATS } else { DEFAULT_DATE_FORMATS };
        let formats = if self.formats.is_empty() { defaults } else { &self.formats };
        let days = dates::parse_iso(v)
            .or_else(|| formats.iter().find_map(|f| dates::parse_with(*f, v)))
            .ok_or_else(|| format!("not a date in {formats:?}: {}", self.shown(v)))?;
        Ok(if self.kind == ColumnType::Month { dates::month_start(days) } else { days })
    }
}

/// True if any byte is a lower-case ASCII letter; blocks of 64 bytes are folded without early
/// exits, which the compiler turns into vector instructions.
fn has_ascii_lowercase(bytes: &[u8]) -> bool {
    bytes.chunks(64).any(|block| block.iter().fold(false, |any, b| any | b.is_ascii_lowercase()))
}

/// `str::trim`, skipped when both ends are visible ASCII (the usual case).
#[inline]
fn trim(v: &str) -> &str {
    match (v.as_bytes().first(), v.as_bytes().last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => v,
        _ => v.trim(),
    }
}

/// Parses `1,234.5`, `-3`, `1e3`: thousands separators are accepted only in groups of three.
pub fn parse_number(v: &str) -> Option<f64> {
    if !v.contains(',') {
        return v.parse::<f64>().ok().filter(|x| x.is_finite());
    }
    let (int_part, frac) = match v.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (v, None),
    };
    let unsigned = int_part.trim_start_matches(['-', '+']);
    let mut groups = unsigned.split(',');
    let first = groups.next()?;
    if first.is_empty() || first.len() > 3 || !groups.all(|g| g.len() == 3) {
        return None;
    }
    let mut buf = String::with_capacity(v.len());
    buf.extend(int_part.chars().filter(|c| *c != ','));
    if let Some(f) = frac {
        buf.push('.');
        buf.push_str(f);
    }
    buf.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn parse_integer(v: &str) -> Result<i64, String> {
    if let Ok(x) = v.parse::<i64>() {
        return Ok(x);
    }
    match parse_number(v) {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(x as i64),
        _ => Err(format!("not a whole number: {}", super::redact::excerpt(v))),
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" | "1" => Ok(true),
        "n" | "no" | "false" | "0" => Ok(false),
        _ => Err(format!("not a yes/no value: {}", super::redact::excerpt(v))),
    }
}

/// `2023/24`, `2023-24`, `2023/2024`, `202324` → `2023/24`.
pub fn parse_financial_year(v: &str) -> Result<String, String> {
    let bad = || format!("not a financial year (YYYY/YY): {}", super::redact::excerpt(v));
    let (start, end) = match v.split_once(['/', '-']) {
        Some(parts) => parts,
        None if v.len() == 6 => v.split_at(4),
        None => return Err(bad()),
    };
    let start: i32 = start.trim().parse().map_err(|_| bad())?;
    let end: i32 = end.trim().parse().map_err(|_| bad())?;
    let expected = start + 1;
    if !(1900..2200).contains(&start) || (end != expected && end != expected % 100) {
        return Err(bad());
    }
    Ok(format!("{start}/{:02}", expected % 100))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Date32Array, Float64Array};
    use arrow::datatypes::{Float64Type, Int64Type};

    fn parser(kind: ColumnType) -> ColumnParser {
        let tokens: Vec<String> = crate::config::pipeline::DEFAULT_NULL_TOKENS.iter().map(|s| s.to_string()).collect();
        ColumnParser {
            kind,
            formats: vec![],
            bare_percent: BarePercent::Percent,
            nulls: NullTokens::new(&tokens),
            recode: vec![],
            accepted: vec![],
            nullable: true,
            pseudonymiser: None,
            vocabulary: None,
        }
    }

    fn run(p: &ColumnParser, values: &[&str]) -> Parsed {
        p.parse(&StringArray::from(values.to_vec()))
    }

    #[test]
    fn messy_numbers() {
        let out = run(&parser(ColumnType::Number), &["1,234", "1,234.5", " 7 ", "*", "[DS]", "12,34", "x", "-3.5"]);
        let a = out.array.as_primitive::<Float64Type>();
        assert_eq!(a.value(0), 1234.0);
        assert_eq!(a.value(1), 1234.5);
        assert_eq!(a.value(2), 7.0);
        assert!(a.is_null(3) && a.is_null(4));
        assert_eq!(out.rejections.iter().map(|r| r.row).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(a.value(7), -3.5);
    }

    #[test]
    fn counts_in_halves() {
        let out = run(&parser(ColumnType::Count), &["6.5", "0.5", "1,045", "0.3", "-1"]);
        let a = out.array.as_primitive::<Float64Type>();
        assert_eq!((a.value(0), a.value(1), a.value(2)), (6.5, 0.5, 1045.0));
        assert_eq!(out.rejections.len(), 2);
        assert!(out.rejections[0].reason.contains("halves"));
    }

    #[test]
    fn percentages() {
        let out = run(&parser(ColumnType::Percent), &["72.3%", "72.3", "100 %"]);
        let a: &Float64Array = out.array.as_primitive();
        assert!((a.value(0) - 0.723).abs() < 1e-12 && (a.value(1) - 0.723).abs() < 1e-12);
        assert_eq!(a.value(2), 1.0);
        let mut frac = parser(ColumnType::Percent);
        frac.bare_percent = BarePercent::Fraction;
        let a = run(&frac, &["0.723"]).array;
        assert_eq!(a.as_primitive::<Float64Type>().value(0), 0.723);
    }

    #[test]
    fn integers_and_required() {
        let mut p = parser(ColumnType::Integer);
        p.nullable = false;
        let out = run(&p, &["1,000", "12.0", "", "4.5"]);
        let a = out.array.as_primitive::<Int64Type>();
        assert_eq!((a.value(0), a.value(1)), (1000, 12));
        assert_eq!(out.rejections[0], Rejection { row: 2, reason: "required value is missing".into() });
        assert_eq!(out.rejections[1].row, 3);
    }

    #[test]
    fn nhs_numbers_become_sixteen_byte_pseudonyms() {
        let key = Arc::new(Pseudonymiser::new(b"0123456789abcdef"));
        let mut p = parser(ColumnType::NhsNumber);
        p.pseudonymiser = Some(key.clone());
        let out = run(&p, &["9434765919", " 943 476 5919 ", "", "9434765918", "94347659"]);
        let a = out.array.as_fixed_size_binary();
        assert_eq!(a.value_length(), 16);
        let expected = key.pseudonym(b"9434765919");
        assert_eq!((a.value(0), a.value(1)), (&expected[..], &expected[..]));
        assert!(a.is_null(2) && a.is_null(3) && a.is_null(4));
        let rejected: Vec<_> = out.rejections.iter().map(|r| (r.row, r.reason.contains("modulus-11"))).collect();
        assert_eq!(rejected, vec![(3, true), (4, false)]);
        assert!(out.rejections.iter().all(|r| !r.reason.contains("943")));
        p.pseudonymiser = None;
        assert!(run(&p, &["9434765919"]).rejections[0].reason.contains("no pseudonymisation key"));
    }

    #[test]
    fn codes_recodes_and_accepted() {
        let mut p = parser(ColumnType::Code);
        p.recode = vec![("Male".into(), "M".into())];
        p.accepted = vec!["M".into(), "F".into()];
        let out = run(&p, &["male", " f ", "X"]);
        let a = out.array.as_string::<i32>();
        assert_eq!((a.value(0), a.value(1)), ("M", "F"));
        assert_eq!(out.rejections.len(), 1);
    }

    #[test]
    fn dates_and_months() {
        let out = run(&parser(ColumnType::Date), &["31/01/2024", "2024-01-31", "45322", "32/01/2024"]);
        let a: &Date32Array = out.array.as_primitive();
        assert!(a.value(0) == a.value(1) && a.value(1) == a.value(2));
        assert_eq!(out.rejections.len(), 1);
        let out = run(&parser(ColumnType::Month), &["APR-23", "April 2023", "2023-04", "2023-04-17"]);
        let a: &Date32Array = out.array.as_primitive();
        assert!((1..4).all(|i| a.value(i) == a.value(0)));
    }

    #[test]
    fn clean_text_keeps_its_buffer_and_messy_text_is_normalised() {
        let input = StringArray::from(vec![Some("A81001"), Some(""), None, Some("B1")]);
        let out = run(&parser(ColumnType::Code), &["A81001", "", "B1"]);
        assert!(out.rejections.is_empty());
        let clean = parser(ColumnType::Code).parse(&input).array;
        let clean = clean.as_string::<i32>();
        assert_eq!(clean.values().as_ptr(), input.values().as_ptr(), "no copy");
        assert_eq!((clean.value(0), clean.is_null(1), clean.is_null(2), clean.value(3)), ("A81001", true, true, "B1"));
        // Lower case, padding and null tokens take the general path with the same meaning.
        let messy = run(&parser(ColumnType::Code), &["a81001 ", "*", " b1"]);
        let messy = messy.array.as_string::<i32>().clone();
        assert_eq!((messy.value(0), messy.is_null(1), messy.value(2)), ("A81001", true, "B1"));
        let mut required = parser(ColumnType::String);
        required.nullable = false;
        assert_eq!(run(&required, &["x", ""]).rejections.len(), 1, "a missing required value is still rejected");
    }

    #[test]
    fn null_tokens_in_any_case_and_nothing_else() {
        let tokens: Vec<String> = crate::config::pipeline::DEFAULT_NULL_TOKENS.iter().map(|s| s.to_string()).collect();
        let nulls = NullTokens::new(&tokens);
        for t in ["", "*", "-", "[e]", "[DS]", "[C]", "..", "null", "Null", "n/a", "na", "NA"] {
            assert!(nulls.is_null(t), "{t:?}");
        }
        for v in ["N", "NAN", "0", "M", "[", ".", "NULLS", "E01000001", "x"] {
            assert!(!nulls.is_null(v), "{v:?}");
        }
    }

    #[test]
    fn accepted_values_spelled_exactly_keep_their_buffer() {
        let mut p = parser(ColumnType::Code);
        p.accepted = vec!["CONFIRMED".into(), "RULED OUT".into()];
        let input = StringArray::from(vec![Some("CONFIRMED"), None, Some("RULED OUT"), Some("")]);
        let out = p.parse(&input);
        assert!(out.rejections.is_empty());
        assert_eq!(out.array.as_string::<i32>().values().as_ptr(), input.values().as_ptr(), "no copy");
        assert_eq!(out.array.null_count(), 2);
        // One value outside the list sends the column down the general path, which rejects it.
        let out = run(&p, &["CONFIRMED", "MAYBE", "ruled out"]);
        assert_eq!(out.rejections.len(), 1);
        assert_eq!(out.rejections[0].row, 1);
        assert_eq!(out.array.as_string::<i32>().value(2), "RULED OUT");
    }

    #[test]
    fn lower_case_found_anywhere_and_trim_shortcut() {
        let mut bytes = vec![b'A'; 200];
        assert!(!has_ascii_lowercase(&bytes));
        for at in [0, 63, 64, 199] {
            bytes[at] = b'z';
            assert!(has_ascii_lowercase(&bytes), "at {at}");
            bytes[at] = b'A';
        }
        for v in ["A1", " A1", "A1\t", "\u{a0}x\u{a0}", "", " "] {
            assert_eq!(trim(v), v.trim());
        }
    }

    #[test]
    fn financial_years() {
        assert_eq!(parse_financial_year("2023/24").unwrap(), "2023/24");
        assert_eq!(parse_financial_year("2023-2024").unwrap(), "2023/24");
        assert_eq!(parse_financial_year("2099/00").unwrap(), "2099/00");
        assert!(parse_financial_year("2023/25").is_err());
    }
}
