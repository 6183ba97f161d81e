//! How walks adapt to the server, and the reference lists they need.
//!
//! A walk starts in the paging mode recorded for its stream in `api_capabilities` (by
//! `audit doctor` or an earlier fallback), a complete walk tries the preferred mode again a day
//! after a fallback, and what a walk had to learn (a fallback, a lost position, what
//! `X-listCount` counts) is warned about once and recorded.

use chrono::Utc;

use super::SyncError;
use crate::inflow::Client;
use crate::inflow::client::RateMeaning;
use crate::inflow::model::{Location, Party, Product};
use crate::inflow::walk::{CountMeaning, ListSpec, Paging, Pass, Position, Walk, WalkNote, WalkStart};
use crate::mapping::{self, DocType};
use crate::store::capabilities::{self, Capability};
use crate::store::reference::{LocationRow, Parties, PartyRow, ProductRow};
use crate::store::walks::{SyncState, WalkMark};
use crate::store::{Store, StoreError};

/// A paging mode that failed is tried again by the first complete walk this long after it was
/// recorded (or whenever `audit doctor` finds it works).
pub const RETRY_PREFERRED_AFTER: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// What earlier runs and `audit doctor` learnt that the client and walks use: how to read the
/// rate headers (set on the client), and what `X-listCount` counts (returned).
pub(super) async fn learnt(store: &Store, client: &Client, company_id: &str) -> Result<CountMeaning, StoreError> {
    if let Some(rate) = store.capability(company_id, capabilities::RATE_HEADERS).await? {
        client.set_rate_meaning(RateMeaning::parse(&rate.value));
    }
    let count = store.capability(company_id, capabilities::LIST_COUNT).await?;
    Ok(count.map_or(CountMeaning::Unknown, |c| CountMeaning::parse(&c.value)))
}

/// Where a saved walk stands, to resume it in the mode it was made with.
pub(super) fn resumed_start(state: &SyncState, meaning: CountMeaning) -> WalkStart {
    let position = Position::decode(state.walk_position.as_deref().unwrap_or(""));
    let paging = state
        .walk_paging
        .as_deref()
        .and_then(Paging::parse)
        .filter(|p| (*p == Paging::Skip) == (position.paging() == Paging::Skip))
        .unwrap_or(position.paging());
    WalkStart {
        paging,
        position,
        pass: Pass::from_stored(state.walk_seen, state.walk_list_count, state.walk_unproven.clone()),
        meaning,
        probe_fallback: None,
    }
}

/// How walks adapt to the server: the paging mode each stream starts with, and what a walk
/// had to learn, warned about once and recorded in `api_capabilities` (and `run_warnings`).
pub(crate) struct Adapt<'a> {
    store: &'a Store,
    client: &'a Client,
    pub(super) company_id: &'a str,
    run_id: i64,
    /// Run warnings recorded through this value.
    pub(super) warnings: std::cell::Cell<i64>,
}

impl<'a> Adapt<'a> {
    pub(crate) fn new(store: &'a Store, client: &'a Client, company_id: &'a str, run_id: i64) -> Adapt<'a> {
        Adapt { store, client, company_id, run_id, warnings: std::cell::Cell::new(0) }
    }

    pub(crate) async fn recorded_paging(&self, stream: &str) -> Result<Option<Paging>, StoreError> {
        let recorded = self.store.capability(self.company_id, &capabilities::paging_key(stream)).await?;
        Ok(recorded.and_then(|c| Paging::parse(&c.value)))
    }

    /// How a new walk of `stream` starts: in the recorded mode, except that a complete walk
    /// tries the preferred one again once the failure is old enough (a probe: without retries,
    /// back to the recorded mode at the first failure).
    pub(crate) async fn fresh_start(
        &self,
        stream: &str,
        complete: bool,
        meaning: CountMeaning,
    ) -> Result<WalkStart, StoreError> {
        let recorded = self.store.capability(self.company_id, &capabilities::paging_key(stream)).await?;
        let mut start = WalkStart { meaning, ..WalkStart::fresh(Paging::PREFERRED) };
        let Some((mode, cap)) = recorded.and_then(|c| Paging::parse(&c.value).map(|m| (m, c))) else {
            return Ok(start);
        };
        if mode == Paging::PREFERRED {
            return Ok(start);
        }
        let age = Utc::now() - cap.checked_at;
        if complete && age >= RETRY_PREFERRED_AFTER {
            tracing::info!(
                "{stream}: trying {} again ({mode} recorded {} h ago)",
                Paging::PREFERRED.describe(),
                age.num_hours()
            );
            start.probe_fallback = Some(mode);
        } else {
            tracing::info!("{stream}: walking with {} ({})", mode.describe(), cap.detail.unwrap_or_default());
            start = WalkStart { meaning, ..WalkStart::fresh(mode) };
        }
        Ok(start)
    }

    pub(crate) async fn record_paging(&self, stream: &str, paging: Paging, why: String) -> Result<(), StoreError> {
        let answer = Capability::new(capabilities::paging_key(stream), paging.as_str(), Some(why));
        self.store.record_capabilities(self.company_id, "ingest", &self.client.config().api_version, &[answer]).await
    }

    /// Whether a `--window` walk of `stream` may go newest first: the date sort is recorded as
    /// honoured, was never checked or could not be told (the walk itself is the probe: every
    /// page is checked), or was recorded as ignored or refused at least
    /// [`RETRY_PREFERRED_AFTER`] ago.
    pub(crate) async fn date_sort_usable(&self, stream: &str) -> Result<bool, StoreError> {
        let Some(cap) = self.store.capability(self.company_id, &capabilities::date_sort_key(stream)).await? else {
            return Ok(true);
        };
        if [capabilities::DATE_SORT_HONOURED, capabilities::DATE_SORT_UNKNOWN].contains(&cap.value.as_str()) {
            return Ok(true);
        }
        let age = Utc::now() - cap.checked_at;
        if age >= RETRY_PREFERRED_AFTER {
            tracing::info!("{stream}: trying the newest-first walk again (not honoured {} h ago)", age.num_hours());
            return Ok(true);
        }
        Ok(false)
    }

    /// Records what `stream` does with the descending date sort (a `DATE_SORT_*` value).
    pub(crate) async fn record_date_sort(&self, stream: &str, value: &str, why: String) -> Result<(), StoreError> {
        let answer = Capability::new(capabilities::date_sort_key(stream), value, Some(why));
        self.store.record_capabilities(self.company_id, "ingest", &self.client.config().api_version, &[answer]).await
    }

    /// Warns about a note once and records it; true when it added a run warning.
    pub(crate) async fn note(
        &self,
        stream: &str,
        doc_type: Option<DocType>,
        note: &WalkNote,
    ) -> Result<bool, StoreError> {
        match note {
            WalkNote::FellBack { from, to, why } => {
                let text = format!(
                    "{stream}: {why}; {from} paging does not work here, so the stream is walked again from its start \
                     with {}. Recorded: a complete walk tries {} again after {} h, and `audit doctor` checks it",
                    to.describe(),
                    Paging::PREFERRED,
                    RETRY_PREFERRED_AFTER.num_hours()
                );
                tracing::warn!("{text}");
                self.record_paging(stream, *to, format!("{from} failed: {why}")).await?;
                self.store.record_run_warning(self.run_id, self.company_id, doc_type, "paging_fallback", &text).await?;
                self.warnings.set(self.warnings.get() + 1);
                Ok(true)
            }
            WalkNote::PositionLost { cursor, why } => {
                let text = format!(
                    "{stream}: the saved position (document {cursor}) no longer answers: {why}. The stream is walked \
                     again from its start: documents already stored cost requests but no writes, and no deletion is \
                     concluded before the walk's end is proven"
                );
                tracing::warn!("{text}");
                self.store.record_run_warning(self.run_id, self.company_id, doc_type, "position_lost", &text).await?;
                self.warnings.set(self.warnings.get() + 1);
                Ok(true)
            }
            WalkNote::CountMeaning(meaning) => {
                let why = format!("two consecutive pages of {stream} showed what X-listCount counts");
                tracing::info!("{why}: {}", meaning.as_str());
                let answer = Capability::new(capabilities::LIST_COUNT, meaning.as_str(), Some(why));
                self.store
                    .record_capabilities(self.company_id, "ingest", &self.client.config().api_version, &[answer])
                    .await?;
                Ok(false)
            }
        }
    }
}

/// Fetches and stores the company's locations (one short walk).
pub(super) async fn fetch_locations(
    store: &Store,
    client: &Client,
    company_id: &str,
    run_id: i64,
) -> Result<(), SyncError> {
    fetch_locations_with(&Adapt::new(store, client, company_id, run_id)).await
}

pub(super) async fn fetch_locations_with(adapt: &Adapt<'_>) -> Result<(), SyncError> {
    let spec = ListSpec {
        path: "locations",
        id_field: "locationId",
        include: None,
        fallback_include: None,
        filters: Vec::new(),
    };
    let locations: Vec<Location> = fetch_all(adapt, spec, "the locations").await?;
    adapt.store.upsert_locations(adapt.company_id, &location_rows(&locations)).await?;
    Ok(())
}

/// Fetches and stores the company's customers or vendors (one walk of the list: inFlow has no
/// changed-since filter for them, so it is made only when an order names one not stored).
pub(super) async fn fetch_parties(adapt: &Adapt<'_>, which: Parties) -> Result<(), SyncError> {
    let spec = ListSpec {
        path: which.table(),
        id_field: which.id_field(),
        include: None,
        fallback_include: None,
        filters: Vec::new(),
    };
    let what = match which {
        Parties::Customers => "the customers",
        Parties::Vendors => "the vendors",
    };
    // Never walked (and `audit doctor` does not ask): the list starts in the mode the
    // locations page with on this server, rather than meeting their failure again.
    if adapt.recorded_paging(which.table()).await?.is_none()
        && let Some(mode) = adapt.recorded_paging("locations").await?
    {
        adapt.record_paging(which.table(), mode, "as the locations page".into()).await?;
    }
    let parties: Vec<Party> = fetch_all(adapt, spec, what).await?;
    let rows: Vec<PartyRow<'_>> = parties
        .iter()
        .filter_map(|p| {
            Some(PartyRow {
                party_id: p.customer_id.as_deref().or(p.vendor_id.as_deref())?,
                name: p.name.as_deref(),
                is_active: p.is_active,
                row_version: p.timestamp.as_deref(),
            })
        })
        .collect();
    adapt.store.upsert_parties(adapt.company_id, which, &rows).await?;
    Ok(())
}

/// Walks a small reference list to its end, in the mode recorded for it.
pub(super) async fn fetch_all<T: serde::de::DeserializeOwned>(
    adapt: &Adapt<'_>,
    spec: ListSpec,
    what: &'static str,
) -> Result<Vec<T>, SyncError> {
    let path = spec.path;
    let start = adapt.fresh_start(path, true, CountMeaning::Unknown).await?;
    let recorded = adapt.recorded_paging(path).await?;
    let mut walk = Walk::start(adapt.client, spec, start);
    let mut all = Vec::new();
    loop {
        let page = walk.next_page().await;
        for note in walk.take_notes() {
            adapt.note(path, None, &note).await?;
        }
        let page = page.map_err(|source| SyncError::Reference { what, source })?;
        if page.restarted {
            // The walk started the list over (another paging mode): what came before comes again.
            all.clear();
        }
        let client = adapt.client;
        all.extend(
            page.items.iter().filter_map(|raw| mapping::storable::parse_storable(&client.redact(raw.get())).ok()),
        );
        if page.last {
            if recorded.is_some_and(|r| r != walk.paging()) {
                let why = format!("a walk of {path} reached its end with {}", walk.paging().describe());
                adapt.record_paging(path, walk.paging(), why).await?;
            }
            return Ok(all);
        }
    }
}

/// Where a complete walk without a date bound stands at `position` (a page's next one).
pub(super) fn walk_mark(
    stream: &'static str,
    walk_id: i64,
    paging: Paging,
    position: &Position,
    pass: &Pass,
) -> WalkMark<'static> {
    WalkMark {
        stream,
        walk_id,
        kind: "complete",
        from: None,
        paging: paging.as_str(),
        position: position.encode(),
        place: place(position),
        seen: pass.seen as i64,
        list_count: pass.stored_count(),
        unproven: pass.unproven.clone(),
        restarted: false,
    }
}

/// How messages name a page, by where the walk goes after it.
fn place(next: &Position) -> String {
    match next {
        Position::After(Some(id)) => format!("ending with document {id}"),
        Position::After(None) => "at the start of the walk".into(),
        Position::Skip { n, .. } => format!("ending before skip={n}"),
    }
}

/// Locations as stored; one without an id cannot be.
fn location_rows(locations: &[Location]) -> Vec<LocationRow<'_>> {
    locations
        .iter()
        .filter_map(|l| {
            Some(LocationRow {
                location_id: l.location_id.as_deref()?,
                name: l.name.as_deref(),
                is_active: l.is_active,
                row_version: l.timestamp.as_deref(),
            })
        })
        .collect()
}

/// Products as stored; one without an id cannot be.
pub(crate) fn product_rows(products: &[Product]) -> Vec<ProductRow<'_>> {
    products
        .iter()
        .filter_map(|p| {
            Some(ProductRow {
                product_id: p.product_id.as_deref()?,
                name: p.name.as_deref(),
                sku: p.sku.as_deref(),
                track_serials: p.track_serials,
                is_active: p.is_active,
                item_type: p.item_type.as_deref(),
                row_version: p.timestamp.as_deref(),
            })
        })
        .collect()
}
