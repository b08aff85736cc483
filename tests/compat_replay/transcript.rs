//! Golden cases as loaded from `compat/golden/`: their exchanges (request bytes, recorded
//! response, upstream requests) and the section format of the T05 transcripts.

use std::path::{Path, PathBuf};

use crate::Res;
use crate::bytes::find;
use crate::group::{Family, Group};
use crate::wire::{Message, parse_message};

/// One golden case: a transcript file and its exchanges.
pub struct Case {
    /// The release it was recorded from.
    pub family: Family,
    /// The number in its file name.
    pub number: u32,
    /// `T05 41-ows-getcaps`.
    pub id: String,
    /// The file name without number and extension (`ows-getcaps`).
    pub slug: String,
    /// The transcript file.
    pub file: PathBuf,
    /// Its group, `None` for cases loaded only for their recordings (setup, Emu's answers).
    pub group: Option<Group>,
    /// The recorded exchanges, in order.
    pub exchanges: Vec<Exchange>,
    /// T05 `SETUP` sections: what the recording did before the case (case 4's token).
    pub setup: Vec<String>,
}

impl Case {
    /// A case of `file` (`NN-slug.ext`).
    pub fn new(
        family: Family,
        number: u32,
        stem: &str,
        file: PathBuf,
        group: Option<Group>,
    ) -> Case {
        let prefix = match family {
            Family::T05 => "T05",
            Family::T06 => "T06",
        };
        Case {
            family,
            number,
            id: format!("{prefix} {stem}"),
            slug: stem.split_once('-').map_or(stem, |(_, s)| s).to_string(),
            file,
            group,
            exchanges: Vec::new(),
            setup: Vec::new(),
        }
    }
}

/// One recorded request and the original's response.
pub struct Exchange {
    /// `T05 41.1`, `T06 136`.
    pub label: String,
    /// 1-based position in the case.
    pub index: usize,
    /// The exact request bytes.
    pub raw: Vec<u8>,
    /// The request method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The request body.
    pub body: Vec<u8>,
    /// The recorded response, body decoded.
    pub response: Message,
    /// What the T05 probe backend received (T05 only).
    pub upstream: Vec<Message>,
}

impl Exchange {
    /// An exchange of the request bytes `raw` (parsed for method, target and body).
    pub fn new(
        label: String,
        index: usize,
        raw: Vec<u8>,
        response: Message,
        upstream: Vec<Message>,
    ) -> Res<Exchange> {
        let request =
            parse_message(&raw, false, false).map_err(|e| format!("{label}: request: {e}"))?;
        Ok(Exchange {
            label,
            index,
            method: request.method().to_string(),
            target: request.target().to_string(),
            body: request.body,
            raw,
            response,
            upstream,
        })
    }
}

/// Case files `NN-name.ext` of a folder with their number, sorted by number.
pub fn case_files(dir: &Path, ext: &str) -> Res<Vec<(u32, String, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(file) = path
            .file_name()
            .and_then(|f| f.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let Some(stem) = file.strip_suffix(ext) else {
            continue;
        };
        let Some((number, _)) = stem.split_once('-') else {
            continue;
        };
        if let Ok(n) = number.parse::<u32>() {
            out.push((n, stem.to_string(), path));
        }
    }
    out.sort();
    Ok(out)
}

/// `==== LABEL (N bytes) ====` sections of a T05 transcript: label and exactly N bytes.
pub fn sections(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = find(&data[pos..], b"==== ") {
        let start = pos + i;
        let Some(eol) = find(&data[start..], b"\n") else {
            break;
        };
        let line = String::from_utf8_lossy(&data[start..start + eol]).into_owned();
        pos = start + eol + 1;
        let at_line_start = start == 0 || data[start - 1] == b'\n';
        let Some(label) = line
            .strip_prefix("==== ")
            .and_then(|l| l.strip_suffix(" bytes) ===="))
        else {
            continue;
        };
        let Some(open) = label.rfind(" (") else {
            continue;
        };
        let Ok(n) = label[open + 2..].parse::<usize>() else {
            continue;
        };
        if !at_line_start {
            continue;
        }
        let end = (pos + n).min(data.len());
        out.push((label[..open].to_string(), data[pos..end].to_vec()));
        pos = end;
    }
    out
}

/// Exchange `k` of case `number`: recordings other cases are built from.
pub fn recorded(cases: &[Case], number: u32, k: usize) -> Res<&Exchange> {
    cases
        .iter()
        .find(|c| c.number == number)
        .and_then(|c| c.exchanges.iter().find(|e| e.index == k))
        .ok_or_else(|| format!("transcript {number}.{k} is missing"))
}
