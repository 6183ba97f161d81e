//! The lines of stock counts' sheets, for a server that refuses `include=sheets.lines`.

use serde_json::value::RawValue;

use crate::inflow::{Client, ClientError};

/// Fills in the lines of each stock count's sheets from `count-sheets/{id}`, for a list that
/// refused `include=sheets.lines`. A cancelled count needs none (it records nothing); a sheet
/// that answers 404 stays without lines, with a warning.
pub(super) async fn complete_sheets(
    client: &Client,
    items: Vec<Box<RawValue>>,
) -> Result<Vec<Box<RawValue>>, ClientError> {
    let query = [("include", "lines".to_string())];
    let mut out = Vec::with_capacity(items.len());
    for raw in items {
        let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(raw.get()) else {
            out.push(raw);
            continue;
        };
        if doc.get("isCancelled").and_then(serde_json::Value::as_bool) == Some(true) {
            out.push(raw);
            continue;
        }
        let Some(sheets) = doc.get_mut("sheets").and_then(serde_json::Value::as_array_mut) else {
            out.push(raw);
            continue;
        };
        let mut filled = false;
        for sheet in sheets.iter_mut().filter(|s| s.is_object() && !s["lines"].is_array()) {
            let Some(id) = sheet.get("countSheetId").and_then(serde_json::Value::as_str).map(str::to_string) else {
                continue;
            };
            let what = format!("GET count-sheets/{id} (the lines of a stock count's sheet)");
            match client.get_document("count-sheets", &id, &query, &what).await? {
                Some(full) => {
                    let lines = serde_json::from_str::<serde_json::Value>(full.get())
                        .ok()
                        .and_then(|v| v.get("lines").cloned())
                        .filter(serde_json::Value::is_array);
                    if let Some(lines) = lines {
                        sheet["lines"] = lines;
                        filled = true;
                    }
                }
                None => tracing::warn!("count sheet {id} answered 404: its stock count is stored without its lines"),
            }
        }
        match filled {
            true => out.push(RawValue::from_string(doc.to_string()).expect("serialised JSON is JSON")),
            false => out.push(raw),
        }
    }
    Ok(out)
}
