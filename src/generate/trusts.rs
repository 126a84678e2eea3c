//! The four trusts' extract shapes, each as its trust sends it (and as `pipelines/trust_pathways_*.toml`
//! declares it):
//!
//! | trust | file | shape |
//! |---|---|---|
//! | R1H Barts Health | `trusts/R1H/Barts_PTL_YYYY-MM.xlsx` | sheet `PTL`, title rows (period in A2), upper-case codes, route/sex/outcome codes, Excel date cells, a `TOTAL` row |
//! | RAL Royal Free | `trusts/RAL/RAL_cancer_pathways_YYYY-MM.csv` | UTF-8 CSV, `dd/mm/yyyy` |
//! | RQX Homerton | `trusts/RQX/Homerton_cancer_MON-YY.tsv` | Windows-1252 TSV, ISO dates, spelled-out sex and outcome |
//! | RRV UCLH | `trusts/RRV/uclh_pathways_YYYY-MM.parquet` | typed Parquet, snake_case |
//!
//! Deliberate faults (when asked for) each spoil exactly one row: an NHS number failing its check
//! digit, an impossible referral date or an unknown route (each rejects its row), or an invalid
//! stage (an optional attribute: the pipelines quarantine the value and keep the row, so these
//! are also counted apart, in [`Faults::values`]).

use super::pathways::Pathway;
use super::rng::Rng;
use super::sink::ChunkWriter;
use crate::error::{Error, Result};
use crate::ingest::dates::civil_from_days;
use arrow::array::{ArrayRef, Date32Builder, Int32Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use std::io::Write;
use std::sync::Arc;

/// The trusts the generator knows.
pub const TRUSTS: [&str; 4] = ["R1H", "RAL", "RQX", "RRV"];

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Boroughs each trust mainly serves.
pub fn catchment(trust: &str) -> &'static [&'static str] {
    match trust {
        "R1H" => &[
            "Tower Hamlets",
            "Newham",
            "Waltham Forest",
            "City of London",
            "Barking and Dagenham",
            "Redbridge",
            "Havering",
        ],
        "RQX" => &["Hackney", "City of London"],
        "RAL" => &["Barnet", "Enfield", "Haringey", "Camden"],
        _ => &["Camden", "Islington", "Haringey", "Barnet", "Enfield"],
    }
}

/// Landing path of a trust's extract for the month starting on `month_start`.
pub fn landing_path(trust: &str, month_start: i32) -> String {
    let (y, m, _) = civil_from_days(month_start);
    match trust {
        "R1H" => format!("trusts/R1H/Barts_PTL_{y:04}-{m:02}.xlsx"),
        "RAL" => format!("trusts/RAL/RAL_cancer_pathways_{y:04}-{m:02}.csv"),
        "RQX" => {
            format!("trusts/RQX/Homerton_cancer_{}-{:02}.tsv", MONTHS[m as usize - 1][..3].to_uppercase(), y % 100)
        }
        _ => format!("trusts/RRV/uclh_pathways_{y:04}-{m:02}.parquet"),
    }
}

/// Fault injection for one file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    pub rate: f64,
    /// Rows spoilt.
    pub injected: u64,
    /// Of those, rows spoilt only in an optional attribute (an invalid stage).
    pub values: u64,
}

impl Faults {
    /// Whether this row is spoilt (one kind of fault).
    pub fn pick_any(&mut self, rng: &mut Rng) -> bool {
        self.pick(rng, &[0]).is_some()
    }

    /// Which fault (0–3) spoils this row, if any.
    fn pick(&mut self, rng: &mut Rng, kinds: &[u8]) -> Option<u8> {
        if self.rate > 0.0 && rng.chance(self.rate) {
            self.injected += 1;
            let kind = kinds[rng.below(kinds.len() as u64) as usize];
            self.values += u64::from(kind == BAD_STAGE);
            Some(kind)
        } else {
            None
        }
    }
}

const BAD_NHS: u8 = 0;
const BAD_DATE: u8 = 1;
const BAD_ROUTE: u8 = 2;
const BAD_STAGE: u8 = 3;

/// Spoils a valid NHS number's check digit.
fn spoil(nhs: &mut [u8; 10]) {
    nhs[9] = b'0' + (nhs[9] - b'0' + 1) % 10;
}

fn date_dmy(out: &mut Vec<u8>, day: i32, sep: u8) {
    let (y, m, d) = civil_from_days(day);
    let _ = write!(out, "{d:02}{}{m:02}{}{y:04}", sep as char, sep as char);
}

fn date_iso(out: &mut Vec<u8>, day: i32) {
    let (y, m, d) = civil_from_days(day);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}");
}

/// Month label `January 2024`.
pub fn month_label(month_start: i32) -> String {
    let (y, m, _) = civil_from_days(month_start);
    format!("{} {y}", MONTHS[m as usize - 1])
}

/// Writes a delimited-text extract (RAL CSV or RQX TSV) row by row into `out`.
pub fn write_text(
    trust: &str,
    pathways: impl Iterator<Item = Pathway>,
    rng: &mut Rng,
    faults: &mut Faults,
    out: &mut ChunkWriter,
) -> Result<u64> {
    let homerton = trust == "RQX";
    let (sep, header) = if homerton {
        (b'\t', "Pathway Id\tNHS No\tProvider\tCommissioner\tDate of Referral\tRoute\tSuspected Site\tDate First Seen\tDate Diagnosis Communicated\tDiagnosis Outcome\tDate Decision to Treat\tDate First Treatment\tModality\tTreating Site\tStage at Diagnosis\tAge\tSex\tEthnic Group\tLSOA Code\r\n")
    } else {
        (b',', "Pathway ID,NHS Number,Provider Code,Commissioner Code,Referral Date,Referral Route,Suspected Cancer,First Seen Date,FDS Date,FDS Outcome,DTT Date,Treatment Date,Treatment Modality,Treating Provider,Stage,Age,Sex,Ethnicity,LSOA\n")
    };
    let eol: &[u8] = if homerton { b"\r\n" } else { b"\n" };
    let mut rows = 0u64;
    let mut line: Vec<u8> = Vec::with_capacity(256);
    out.write_all(header.as_bytes()).map_err(sink_error)?;
    let lsoas = super::pathways::lsoas_cached();
    for mut p in pathways {
        line.clear();
        let fault = faults.pick(rng, &[BAD_NHS, BAD_DATE, BAD_ROUTE, BAD_STAGE]);
        if fault == Some(BAD_NHS) {
            spoil(&mut p.nhs_number);
        }
        let date = |line: &mut Vec<u8>, day: Option<i32>| {
            if let Some(d) = day {
                if homerton {
                    date_iso(line, d)
                } else {
                    date_dmy(line, d, b'/')
                }
            }
            line.push(sep);
        };
        line.extend_from_slice(p.pathway_id.as_bytes());
        line.push(sep);
        // Homerton's system prints NHS numbers in the 3-3-4 spaced form.
        if homerton {
            line.extend_from_slice(&p.nhs_number[..3]);
            line.push(b' ');
            line.extend_from_slice(&p.nhs_number[3..6]);
            line.push(b' ');
            line.extend_from_slice(&p.nhs_number[6..]);
        } else {
            line.extend_from_slice(&p.nhs_number);
        }
        line.push(sep);
        let _ = write!(line, "{}{}{}{}", p.provider, sep as char, p.commissioner, sep as char);
        if fault == Some(BAD_DATE) {
            let (y, _, _) = civil_from_days(p.referral);
            let _ = if homerton { write!(line, "{y}-02-30") } else { write!(line, "30/02/{y}") };
            line.push(sep);
        } else {
            date(&mut line, Some(p.referral));
        }
        line.extend_from_slice(if fault == Some(BAD_ROUTE) { "ROUTINE" } else { p.route_label() }.as_bytes());
        line.push(sep);
        // Homerton's labels carry a Windows-1252 en dash for head and neck.
        let site = if homerton && p.site_label() == "Head and Neck" {
            "Head and Neck \u{2013} upper aerodigestive"
        } else {
            p.site_label()
        };
        line.extend_from_slice(site.as_bytes());
        line.push(sep);
        date(&mut line, p.first_seen);
        date(&mut line, p.fds);
        let outcome = match (p.confirmed, homerton) {
            (Some(true), false) => "CONFIRMED",
            (Some(false), false) => "RULED OUT",
            (Some(true), true) => "Cancer confirmed",
            (Some(false), true) => "Cancer ruled out",
            (None, _) => "",
        };
        line.extend_from_slice(outcome.as_bytes());
        line.push(sep);
        date(&mut line, p.dtt);
        date(&mut line, p.treatment);
        line.extend_from_slice(p.modality_label().unwrap_or("").as_bytes());
        line.push(sep);
        line.extend_from_slice(p.treating_provider.unwrap_or("").as_bytes());
        line.push(sep);
        line.extend_from_slice(if fault == Some(BAD_STAGE) { "5" } else { p.stage_label().unwrap_or("") }.as_bytes());
        line.push(sep);
        let sex = match (p.female, homerton) {
            (true, false) => "F",
            (false, false) => "M",
            (true, true) => "Female",
            (false, true) => "Male",
        };
        let _ = write!(
            line,
            "{}{}{sex}{}{}{}{}",
            p.age, sep as char, sep as char, p.ethnic, sep as char, lsoas[p.lsoa].code
        );
        line.extend_from_slice(eol);
        if homerton {
            let (encoded, _, _) = encoding_rs::WINDOWS_1252.encode(std::str::from_utf8(&line).unwrap_or_default());
            out.write_all(&encoded).map_err(sink_error)?;
        } else {
            out.write_all(&line).map_err(sink_error)?;
        }
        rows += 1;
        // With faults on, Royal Free's export also carries stray blank lines (not records).
        if faults.rate > 0.0 && !homerton && rows.is_multiple_of(997) {
            out.write_all(b"\n").map_err(sink_error)?;
        }
    }
    Ok(rows)
}

fn sink_error(e: std::io::Error) -> Error {
    Error::source_file("generator output", format!("writing the synthetic extract failed: {e}"))
}

/// Writes Barts' workbook: two title rows, a blank row, the header, the rows and a `TOTAL` row.
pub fn write_barts_xlsx(
    month_start: i32,
    pathways: Vec<Pathway>,
    rng: &mut Rng,
    faults: &mut Faults,
) -> Result<Vec<u8>> {
    use rust_xlsxwriter::{Format, Workbook};
    let xlsx = |e: rust_xlsxwriter::XlsxError| Error::source_file("generator output", format!("xlsx: {e}"));
    if pathways.len() > 1_000_000 {
        return Err(Error::source_file(
            "generator output",
            "an xlsx sheet holds at most 1,048,576 rows: use fewer rows per file",
        ));
    }
    let mut book = Workbook::new();
    // A fixed creation time (the first of the period) keeps the workbook byte-identical per seed.
    let (y, m, _) = civil_from_days(month_start);
    let created = rust_xlsxwriter::ExcelDateTime::from_ymd(y as u16, m as u8, 1).map_err(xlsx)?;
    book.set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&created));
    let sheet = book.add_worksheet();
    sheet.set_name("PTL").map_err(xlsx)?;
    let date_format = Format::new().set_num_format("dd/mm/yyyy");
    sheet.write_string(0, 0, "Barts Health NHS Trust - Cancer PTL extract (synthetic)").map_err(xlsx)?;
    sheet.write_string(1, 0, format!("Period: {}", month_label(month_start))).map_err(xlsx)?;
    let headers = [
        "PATHWAY_REF",
        "NHS_NO",
        "PROVIDER",
        "CCG_CODE",
        "REF_DT",
        "REF_ROUTE",
        "TUMOUR_GROUP",
        "SEEN_DT",
        "FDS_DT",
        "FDS_RESULT",
        "DTT_DT",
        "TREAT_DT",
        "MODALITY",
        "TREAT_ORG",
        "STAGE",
        "AGE_AT_REF",
        "GENDER",
        "ETHNIC_CODE",
        "LSOA11",
    ];
    for (c, h) in headers.iter().enumerate() {
        sheet.write_string(3, c as u16, *h).map_err(xlsx)?;
    }
    // Excel serial day numbers: 1899-12-30 is day 0 (1900 system, after the leap-year bug).
    const EXCEL_EPOCH_OFFSET: f64 = 25_569.0;
    let lsoas = super::pathways::lsoas_cached();
    let mut row = 4u32;
    for mut p in pathways {
        let fault = faults.pick(rng, &[BAD_NHS, BAD_DATE, BAD_ROUTE, BAD_STAGE]);
        if fault == Some(BAD_NHS) {
            spoil(&mut p.nhs_number);
        }
        let referral = (fault != Some(BAD_DATE)).then_some(p.referral);
        for (col, day) in [(4, referral), (7, p.first_seen), (8, p.fds), (10, p.dtt), (11, p.treatment)] {
            if let Some(d) = day {
                sheet.write_number_with_format(row, col, d as f64 + EXCEL_EPOCH_OFFSET, &date_format).map_err(xlsx)?;
            }
        }
        if referral.is_none() {
            let (y, _, _) = civil_from_days(p.referral);
            sheet.write_string(row, 4, format!("30/02/{y}")).map_err(xlsx)?;
        }
        let route = if fault == Some(BAD_ROUTE) { "ROUTINE" } else { ["USC", "SCR", "BRS", "UPG"][p.route] };
        let texts: [(u16, &str); 9] = [
            (0, &p.pathway_id),
            (1, std::str::from_utf8(&p.nhs_number).unwrap_or_default()),
            (2, p.provider),
            (3, p.commissioner),
            (5, route),
            (6, &p.site_label().to_uppercase()),
            (
                9,
                match p.confirmed {
                    Some(true) => "Y",
                    Some(false) => "N",
                    None => "",
                },
            ),
            (12, &p.modality_label().unwrap_or("").to_uppercase()),
            (13, p.treating_provider.unwrap_or("")),
        ];
        for (col, text) in texts {
            if !text.is_empty() {
                sheet.write_string(row, col, text).map_err(xlsx)?;
            }
        }
        match (fault, p.stage_label()) {
            (Some(BAD_STAGE), _) => sheet.write_number(row, 14, 5.0).map(|_| ()).map_err(xlsx)?,
            (_, Some("X")) => sheet.write_string(row, 14, "X").map(|_| ()).map_err(xlsx)?,
            (_, Some(s)) => sheet.write_number(row, 14, s.parse::<f64>().unwrap_or(0.0)).map(|_| ()).map_err(xlsx)?,
            (_, None) => {}
        }
        sheet.write_number(row, 15, p.age as f64).map_err(xlsx)?;
        sheet.write_number(row, 16, if p.female { 2.0 } else { 1.0 }).map_err(xlsx)?;
        sheet.write_string(row, 17, p.ethnic).map_err(xlsx)?;
        sheet.write_string(row, 18, &lsoas[p.lsoa].code).map_err(xlsx)?;
        row += 1;
    }
    sheet.write_string(row, 0, "TOTAL").map_err(xlsx)?;
    sheet.write_number(row, 15, (row - 4) as f64).map_err(xlsx)?;
    book.save_to_buffer().map_err(xlsx)
}

/// Schema of UCLH's Parquet extract.
fn uclh_schema() -> Arc<Schema> {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let d = |n: &str| Field::new(n, DataType::Date32, true);
    Arc::new(Schema::new(vec![
        s("pathway_id"),
        s("nhs_number"),
        s("provider_code"),
        s("commissioner_code"),
        d("referral_date"),
        s("route"),
        s("suspected_cancer"),
        d("first_seen_date"),
        d("fds_date"),
        s("fds_outcome"),
        d("dtt_date"),
        d("first_treatment_date"),
        s("modality"),
        s("treating_provider"),
        s("stage"),
        Field::new("age", DataType::Int32, true),
        s("sex"),
        s("ethnic_category"),
        s("lsoa_code"),
    ]))
}

/// Writes UCLH's typed Parquet extract in record batches of 65,536 rows; returns the rows and the
/// bytes written.
pub fn write_uclh_parquet(
    pathways: impl Iterator<Item = Pathway>,
    rng: &mut Rng,
    faults: &mut Faults,
    out: ChunkWriter,
) -> Result<(u64, u64)> {
    let schema = uclh_schema();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(131_072))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(props))
        .map_err(Error::parquet("opening the synthetic UCLH extract"))?;
    let lsoas = super::pathways::lsoas_cached();
    let mut rows = 0u64;
    let mut pathways = pathways.peekable();
    while pathways.peek().is_some() {
        let mut s: Vec<StringBuilder> = (0..13).map(|_| StringBuilder::new()).collect();
        let mut d: Vec<Date32Builder> = (0..5).map(|_| Date32Builder::new()).collect();
        let mut age = Int32Builder::new();
        for mut p in pathways.by_ref().take(65_536) {
            let fault = faults.pick(rng, &[BAD_NHS, BAD_ROUTE, BAD_STAGE]);
            if fault == Some(BAD_NHS) {
                spoil(&mut p.nhs_number);
            }
            let route = if fault == Some(BAD_ROUTE) { "ROUTINE" } else { p.route_label() };
            let stage = if fault == Some(BAD_STAGE) { Some("5") } else { p.stage_label() };
            let outcome = p.confirmed.map(|c| if c { "CONFIRMED" } else { "RULED OUT" });
            let texts: [Option<&str>; 13] = [
                Some(&p.pathway_id),
                std::str::from_utf8(&p.nhs_number).ok(),
                Some(p.provider),
                Some(p.commissioner),
                Some(route),
                Some(p.site_label()),
                outcome,
                p.modality_label(),
                p.treating_provider,
                stage,
                Some(if p.female { "F" } else { "M" }),
                Some(p.ethnic),
                Some(&lsoas[p.lsoa].code),
            ];
            for (b, t) in s.iter_mut().zip(texts) {
                b.append_option(t);
            }
            for (b, v) in d.iter_mut().zip([Some(p.referral), p.first_seen, p.fds, p.dtt, p.treatment]) {
                b.append_option(v);
            }
            age.append_value(p.age as i32);
            rows += 1;
        }
        let f = |b: &mut StringBuilder| Arc::new(b.finish()) as ArrayRef;
        let g = |b: &mut Date32Builder| Arc::new(b.finish()) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            f(&mut s[0]),
            f(&mut s[1]),
            f(&mut s[2]),
            f(&mut s[3]),
            g(&mut d[0]),
            f(&mut s[4]),
            f(&mut s[5]),
            g(&mut d[1]),
            g(&mut d[2]),
            f(&mut s[6]),
            g(&mut d[3]),
            g(&mut d[4]),
            f(&mut s[7]),
            f(&mut s[8]),
            f(&mut s[9]),
            Arc::new(age.finish()),
            f(&mut s[10]),
            f(&mut s[11]),
            f(&mut s[12]),
        ];
        let batch =
            RecordBatch::try_new(schema.clone(), columns).map_err(Error::arrow("assembling the UCLH extract"))?;
        writer.write(&batch).map_err(Error::parquet("writing the UCLH extract"))?;
    }
    let out = writer.into_inner().map_err(Error::parquet("closing the UCLH extract"))?;
    let bytes = out.finish().map_err(sink_error)?;
    Ok((rows, bytes))
}
