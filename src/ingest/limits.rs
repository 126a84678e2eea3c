//! Workbook bounds, checked before calamine holds a sheet in memory.
//!
//! An XLSX file is a zip archive; a few megabytes can inflate to gigabytes (a zip bomb), and a
//! sheet with two cells far apart makes calamine allocate the whole grid between them. Before a
//! sheet is read, [`check_archive`] looks at every part's sizes in the zip central directory
//! (nothing is decompressed): a part larger than `limits.max_xlsx_sheet_bytes` uncompressed, or
//! over 1 MiB and more than `limits.max_xlsx_zip_ratio` times its compressed size, rejects the
//! file. The central directory can lie, so each part is then inflated into nothing, counting
//! bytes, and stopped at the limit. [`check_grid`] bounds the cells the sheet's range would
//! hold. Reasons name the part and the limit, never content.

use super::redact;
use crate::config::environment::LimitSettings;
use crate::error::{Error, Result};
use std::io::{Cursor, Read};

/// Parts smaller than this are not checked for their compression ratio (small XML compresses
/// oddly well or badly, and cannot hurt).
pub const RATIO_FLOOR_BYTES: u64 = 1 << 20;

/// Checks every part of the workbook archive against the limits.
pub fn check_archive(file: &str, bytes: &[u8], limits: &LimitSettings) -> Result<()> {
    let fail = |reason: String| Error::source_file(file, reason);
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| fail(format!("not a readable xlsx workbook: {}", redact::excerpt(&e.to_string()))))?;
    let max = limits.max_xlsx_sheet_bytes;
    for i in 0..archive.len() {
        let part = archive.by_index_raw(i).map_err(|e| fail(format!("workbook part {i} is unreadable: {e}")))?;
        let (size, packed) = (part.size(), part.compressed_size());
        let name = redact::excerpt(part.name());
        if size > max {
            return Err(fail(format!(
                "workbook part {name} is {size} bytes uncompressed, over the limit of {max} (limits.max_xlsx_sheet_bytes)"
            )));
        }
        if size > RATIO_FLOOR_BYTES && size / packed.max(1) > limits.max_xlsx_zip_ratio {
            return Err(fail(format!(
                "workbook part {name} inflates {}-fold ({packed} to {size} bytes), over the limit of {} \
                 (limits.max_xlsx_zip_ratio): a zip bomb?",
                size / packed.max(1),
                limits.max_xlsx_zip_ratio
            )));
        }
    }
    // The sizes above are what the archive says; inflate each part into nothing to be sure.
    for i in 0..archive.len() {
        let part = archive.by_index(i).map_err(|e| fail(format!("workbook part {i} is unreadable: {e}")))?;
        let name = redact::excerpt(part.name());
        let mut counted = part.take(max + 1);
        let inflated = std::io::copy(&mut counted, &mut std::io::sink())
            .map_err(|e| fail(format!("workbook part {name} cannot be decompressed: {}", e.kind())))?;
        if inflated > max {
            return Err(fail(format!(
                "workbook part {name} inflates past the limit of {max} bytes (limits.max_xlsx_sheet_bytes), \
                 more than the archive declares"
            )));
        }
    }
    Ok(())
}

/// Checks that a sheet whose cells span `rows` × `columns` can be held: calamine keeps one cell
/// value per position of that grid.
pub fn check_grid(file: &str, sheet: &str, rows: u64, columns: u64, limits: &LimitSettings) -> Result<()> {
    let cell = std::mem::size_of::<calamine::Data>() as u64;
    let bytes = rows.saturating_mul(columns).saturating_mul(cell);
    if bytes > limits.max_xlsx_sheet_bytes {
        return Err(Error::source_file(
            file,
            format!(
                "sheet {} spans {rows} rows × {columns} columns, {bytes} bytes in memory, over the limit of {} \
                 (limits.max_xlsx_sheet_bytes)",
                redact::excerpt(sheet),
                limits.max_xlsx_sheet_bytes
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn archive(parts: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in parts {
            w.start_file(*name, options).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn large_and_inflating_parts_are_refused_before_reading() {
        let limits = LimitSettings { max_xlsx_sheet_bytes: 8 << 20, max_xlsx_zip_ratio: 50, ..Default::default() };
        let small = archive(&[("xl/worksheets/sheet1.xml", b"<x/>".to_vec())]);
        check_archive("f", &small, &limits).unwrap();
        let bomb = archive(&[("xl/worksheets/sheet1.xml", vec![b'a'; 4 << 20])]);
        let e = check_archive("f", &bomb, &limits).unwrap_err().to_string();
        assert!(e.contains("max_xlsx_zip_ratio"), "{e}");
        let big = archive(&[("xl/sharedStrings.xml", vec![b'b'; 9 << 20])]);
        let e = check_archive("f", &big, &limits).unwrap_err().to_string();
        assert!(e.contains("max_xlsx_sheet_bytes") && e.contains("sharedStrings"), "{e}");
        assert!(check_archive("f", b"not a zip", &limits).is_err());
    }

    #[test]
    fn a_part_that_inflates_past_what_it_declares_is_stopped_at_the_limit() {
        let limits = LimitSettings { max_xlsx_sheet_bytes: 1 << 20, ..Default::default() };
        let mut lying = archive(&[("xl/worksheets/sheet1.xml", vec![b'c'; 3 << 20])]);
        // Declare 1,000 bytes uncompressed in the local header and the central directory.
        let declared = (3u32 << 20).to_le_bytes();
        let at: Vec<usize> = lying.windows(4).enumerate().filter(|(_, w)| *w == declared).map(|(i, _)| i).collect();
        assert_eq!(at.len(), 2, "the size is declared twice");
        for i in at {
            lying[i..i + 4].copy_from_slice(&1000u32.to_le_bytes());
        }
        let e = check_archive("f", &lying, &limits).unwrap_err().to_string();
        assert!(e.contains("more than the archive declares"), "{e}");
    }

    #[test]
    fn grids_are_bounded() {
        let limits = LimitSettings::default();
        check_grid("f", "s", 100_000, 50, &limits).unwrap();
        assert!(check_grid("f", "s", 1_048_576, 16_384, &limits).unwrap_err().to_string().contains("spans"));
    }
}
