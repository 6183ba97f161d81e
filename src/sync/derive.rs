//! Documents to events, as they are stored: the JSON both engines can hold, the escapes kept as
//! text, and stock adjustments derived with what the stored counts found.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::inflow::walk::id_of;
use crate::mapping::stock_count::CountEvidence;
use crate::mapping::storable::{KeptEscape, storable_json};
use crate::mapping::{self, Context, Derived, DocType, EventType, MappingError, Warning, WarningKind};
use crate::store::write::{DocWrite, LooseWarning};
use crate::store::{Store, StoreError};

/// Why a document could not be read, with its first bytes.
pub(super) fn unreadable(raw: &str, err: &mapping::MappingError) -> String {
    format!("{err}; it starts with {}", crate::inflow::client::body_start(raw.as_bytes()))
}

/// Each document's JSON in the form both databases store (see [`mapping::storable`]): `None`
/// where that is the JSON as sent, with the escapes that had to be kept as text.
pub(super) fn storable_forms(items: &[&RawValue]) -> Vec<(Option<Box<RawValue>>, Vec<KeptEscape>)> {
    items
        .iter()
        .map(|raw| match storable_json(raw.get()) {
            (Cow::Borrowed(_), _) => (None, Vec::new()),
            // Valid JSON stays valid: only backslashes inside strings are doubled.
            (Cow::Owned(clean), kept) => (RawValue::from_string(clean).ok(), kept),
        })
        .collect()
}

/// Derives a document from its storable JSON, with a warning for each escape kept as text.
fn derive_storable(
    doc_type: DocType,
    stored: &RawValue,
    kept: &[KeptEscape],
    counts: &[CountEvidence],
) -> Result<Derived, MappingError> {
    let mut derived = mapping::derive_with(doc_type, stored.get(), Context { counts })?;
    derived.warnings.extend(kept.iter().map(|k| Warning {
        kind: WarningKind::EscapedText,
        line_collection: None,
        line_id: None,
        detail: format!("{}; the JSON as sent is in documents.raw_text", k.describe()),
    }));
    Ok(derived)
}

/// One document of a page as it is stored: its storable JSON, the escapes kept as text in it,
/// and the JSON as sent where that differs.
pub(super) struct Stored<'r> {
    pub json: &'r RawValue,
    kept: &'r [KeptEscape],
    raw_text: Option<&'r str>,
}

impl<'r> Stored<'r> {
    /// A page's documents, from their storable forms ([`storable_forms`]).
    pub(super) fn page(
        items: &[&'r RawValue],
        forms: &'r [(Option<Box<RawValue>>, Vec<KeptEscape>)],
    ) -> Vec<Stored<'r>> {
        items
            .iter()
            .zip(forms)
            .map(|(&raw, (clean, kept))| Stored {
                json: clean.as_deref().unwrap_or(raw),
                kept,
                raw_text: clean.is_some().then(|| raw.get()),
            })
            .collect()
    }

    /// The JSON as inFlow sent it.
    pub(super) fn as_sent(&self) -> &'r str {
        self.raw_text.unwrap_or(self.json.get())
    }
}

/// Derives a page's documents, each to its events or to why it cannot be read. Stock
/// adjustments are derived knowing what the stored stock counts found and missed of their
/// serials, to recognise the adjustments a count made.
pub(super) async fn derive_docs<'r>(
    store: &Store,
    company_id: &str,
    doc_type: DocType,
    page: &[Stored<'r>],
) -> Result<Vec<Result<DocWrite<'r>, MappingError>>, StoreError> {
    let derive = |evidence: &[CountEvidence]| -> Vec<Result<DocWrite<'r>, MappingError>> {
        page.iter()
            .map(|s| {
                let derived = derive_storable(doc_type, s.json, s.kept, evidence)?;
                Ok(DocWrite { derived, raw: s.json, raw_text: s.raw_text })
            })
            .collect()
    };
    let first = derive(&[]);
    if doc_type != DocType::StockAdjustment {
        return Ok(first);
    }
    let mut serials: Vec<&str> = first
        .iter()
        .flatten()
        .flat_map(|d| d.derived.events.iter())
        .filter(|e| matches!(e.event_type, EventType::AdjustedIn | EventType::AdjustedOut))
        .map(|e| e.serial.as_str())
        .collect();
    serials.sort_unstable();
    serials.dedup();
    if serials.is_empty() {
        return Ok(first);
    }
    let evidence = store.count_evidence(company_id, &serials).await?;
    if evidence.is_empty() {
        return Ok(first);
    }
    Ok(derive(&evidence))
}

/// Derives stored documents again (`audit rebuild`, the re-check of adjustments), from the JSON
/// as sent and its storable `forms`: one that cannot be read is stored already, so it becomes a
/// warning saying a later version may read it.
pub(super) async fn derive_stored<'r>(
    store: &Store,
    company_id: &str,
    doc_type: DocType,
    raws: &[&'r RawValue],
    forms: &'r [(Option<Box<RawValue>>, Vec<KeptEscape>)],
) -> Result<(Vec<DocWrite<'r>>, Vec<LooseWarning>), StoreError> {
    let page = Stored::page(raws, forms);
    let mut docs = Vec::with_capacity(raws.len());
    let mut loose_warnings = Vec::new();
    for (stored, result) in page.iter().zip(derive_docs(store, company_id, doc_type, &page).await?) {
        match result {
            Ok(doc) => docs.push(doc),
            Err(err) => loose_warnings.push(LooseWarning {
                doc_type,
                doc_id: id_of(stored.json, doc_type.id_field()),
                kind: "unreadable_document",
                detail: unreadable(stored.json.get(), &err),
            }),
        }
    }
    Ok((docs, loose_warnings))
}
