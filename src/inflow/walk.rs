//! Walking a list endpoint page by page, and proving where it ends.
//!
//! The preferred walk is a keyset on the primary key (`sort=<entity>Id&after=<last id>&count=100`),
//! which stays correct while documents change: an edit or insert elsewhere cannot shift rows
//! between pages the way `skip` paging does. The order of the ids is the server's (SQL Server
//! sorts GUIDs in its own byte order), so nothing here assumes they ascend as text.
//!
//! **A walk ends only when its end is proven.** An empty page proves it; so does a short page
//! when `X-listCount` (asked with `includeCount=true`) shows that nothing is left: when the
//! count is no more than the page holds (true whatever the count counts), or, for a server whose
//! count is the whole filtered set (learnt from two consecutive pages), when the pass has
//! returned that many documents and the count never moved. A short page that proves nothing
//! (a server capping its pages below `count`, or sending no count) is followed by the next page:
//! on inFlow's default the proof costs no request, without a count at most one per walk. A full
//! page never ends a walk.
//!
//! **Paging adapts.** When the paging parameters fail (400, 404 or a 5xx that persists on the
//! first request using them, or pages that ignore `after`), the walk falls back (keyset without
//! `sort`, then `skip`) and starts the stream again; the engine records the mode and tries the
//! preferred one again later. `skip` pages overlap by one row, so that a shift (documents added
//! or deleted while walking) is seen, and a pass that saw one does not claim to be complete.
//!
//! **A lost position is recovered.** When a cursor no longer answers (400, 404, a persisting
//! 5xx), or a saved one (from an earlier run) answers an empty page that the count does not
//! confirm, the cursor's document is asked for by id: if inFlow no longer has it, the walk
//! starts the stream again; if it has, the paging mode is what fails.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::client::{ArrayPage, Client, ClientError, RetryPolicy};

/// inFlow's maximum page size.
pub const PAGE_SIZE: usize = 100;

/// Passes a walk may start again in one run (lost positions, fallbacks) before it reports the
/// error instead: each costs a walk over what was already read.
const MAX_RESTARTS: u32 = 4;

/// How a walk asks for its pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// `sort=<id>&after=<last id>`: the preferred walk.
    Keyset,
    /// `after=<last id>` in the server's default order, for a server that cannot sort on the id.
    KeysetUnsorted,
    /// `skip=<n>`, pages overlapping by one row, de-duplicated by id.
    Skip,
}

impl Paging {
    /// The mode every walk tries first, and the engine goes back to later.
    pub const PREFERRED: Paging = Paging::Keyset;

    /// The stored name: `keyset`, `keyset-unsorted` or `skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            Paging::Keyset => "keyset",
            Paging::KeysetUnsorted => "keyset-unsorted",
            Paging::Skip => "skip",
        }
    }

    /// Reads [`Paging::as_str`]'s names back; `None` for anything else.
    pub fn parse(s: &str) -> Option<Paging> {
        [Paging::Keyset, Paging::KeysetUnsorted, Paging::Skip].into_iter().find(|p| p.as_str() == s)
    }

    /// The next mode to try when this one fails.
    pub fn fallback(self) -> Option<Paging> {
        match self {
            Paging::Keyset => Some(Paging::KeysetUnsorted),
            Paging::KeysetUnsorted => Some(Paging::Skip),
            Paging::Skip => None,
        }
    }

    /// The mode and its parameters, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Paging::Keyset => "keyset paging on the id (sort=<id>&after=<id>)",
            Paging::KeysetUnsorted => "keyset paging in the server's default order (after=<id>, no sort)",
            Paging::Skip => "skip paging (skip=<n>, pages overlapping by one row)",
        }
    }
}

impl fmt::Display for Paging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a walk stands: what the next request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// Keyset paging; `None` is the first page.
    After(Option<String>),
    /// `skip` paging: `n` rows consumed; `last` is the id of row `n - 1`, which the next page
    /// asks for again to see whether rows shifted.
    Skip {
        /// Rows consumed: the next page's `skip`.
        n: u64,
        /// The id of row `n - 1`, if known.
        last: Option<String>,
    },
}

impl Position {
    /// The first page of a keyset walk.
    pub const START: Position = Position::After(None);

    /// The first page of a walk in this mode.
    pub fn start(paging: Paging) -> Position {
        match paging {
            Paging::Skip => Position::Skip { n: 0, last: None },
            _ => Position::START,
        }
    }

    /// Whether this is the first page of a walk, in either mode.
    pub fn is_start(&self) -> bool {
        matches!(self, Position::After(None) | Position::Skip { n: 0, .. })
    }

    /// The stored form: `after:<id>`, `skip:<n>` or `skip:<n>:<id>`, or empty at the start.
    pub fn encode(&self) -> String {
        match self {
            Position::After(None) => String::new(),
            Position::After(Some(id)) => format!("after:{id}"),
            Position::Skip { n, last: None } => format!("skip:{n}"),
            Position::Skip { n, last: Some(id) } => format!("skip:{n}:{id}"),
        }
    }

    /// Reads [`Position::encode`]'s form back; anything unreadable is [`Position::START`].
    pub fn decode(s: &str) -> Position {
        if let Some(id) = s.strip_prefix("after:") {
            return Position::After(Some(id.to_string()));
        }
        if let Some(rest) = s.strip_prefix("skip:") {
            let (n, last) = match rest.split_once(':') {
                Some((n, id)) => (n, Some(id.to_string()).filter(|id| !id.is_empty())),
                None => (rest, None),
            };
            if let Ok(n) = n.parse() {
                return Position::Skip { n, last };
            }
        }
        Position::START
    }

    /// The paging a stored position was made with, for walks saved before modes were recorded.
    pub fn paging(&self) -> Paging {
        match self {
            Position::After(_) => Paging::Keyset,
            Position::Skip { .. } => Paging::Skip,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::After(None) | Position::Skip { n: 0, .. } => f.write_str("first page"),
            Position::After(Some(id)) => write!(f, "page after {id}"),
            Position::Skip { n, .. } => write!(f, "page at skip={n}"),
        }
    }
}

/// What `X-listCount` counts, as far as is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountMeaning {
    /// Not learnt yet: a count proves an end only when it is no larger than the page.
    Unknown,
    /// Every document matching the filters, wherever the page is.
    Total,
    /// What remains from the page's position (the page included).
    Remaining,
}

impl CountMeaning {
    /// The stored name: `unknown`, `total` or `remaining`.
    pub fn as_str(self) -> &'static str {
        match self {
            CountMeaning::Unknown => "unknown",
            CountMeaning::Total => "total",
            CountMeaning::Remaining => "remaining",
        }
    }

    /// Reads [`CountMeaning::as_str`]'s names back; anything else is `Unknown`.
    pub fn parse(s: &str) -> CountMeaning {
        match s {
            "total" => CountMeaning::Total,
            "remaining" => CountMeaning::Remaining,
            _ => CountMeaning::Unknown,
        }
    }

    /// What two consecutive counted pages say: the count stayed (`Total`) or fell by the rows
    /// the position moved on (`Remaining`).
    pub fn observed(previous: u64, moved_on: u64, now: u64) -> CountMeaning {
        if moved_on == 0 {
            CountMeaning::Unknown
        } else if now == previous {
            CountMeaning::Total
        } else if now + moved_on == previous {
            CountMeaning::Remaining
        } else {
            CountMeaning::Unknown
        }
    }
}

/// What the current pass of a walk has seen, saved with each page so that a resumed walk can
/// still prove its end and its completeness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Documents the server returned in this pass (overlapping rows not counted twice).
    pub seen: u64,
    /// `X-listCount` of the pass's first counted page, while every counted page said the same.
    pub list_count: Option<u64>,
    /// The count moved during the pass (documents added or deleted): it proves no end.
    pub count_moved: bool,
    /// Why this pass cannot prove that it returned every document, if so.
    pub unproven: Option<String>,
}

impl Pass {
    /// The stored form of `list_count` and `count_moved`: the count, or -1 once it moved.
    pub fn stored_count(&self) -> Option<i64> {
        if self.count_moved { Some(-1) } else { self.list_count.map(|c| c as i64) }
    }

    /// Reads back what was saved: `seen`, [`Pass::stored_count`]'s count and `unproven`.
    pub fn from_stored(seen: Option<i64>, count: Option<i64>, unproven: Option<String>) -> Pass {
        Pass {
            seen: seen.unwrap_or(0).max(0) as u64,
            list_count: count.filter(|c| *c >= 0).map(|c| c as u64),
            count_moved: count.is_some_and(|c| c < 0),
            unproven,
        }
    }
}

/// Something that happened to a walk, for the engine to report and record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkNote {
    /// The walk changed how it pages and started the stream again.
    FellBack {
        /// The mode that failed.
        from: Paging,
        /// The mode now used.
        to: Paging,
        /// What failed, for the report.
        why: String,
    },
    /// The saved position no longer answers: the walk started the stream again.
    PositionLost {
        /// The id the position was after; inFlow no longer has that document.
        cursor: String,
        /// What showed it, for the report.
        why: String,
    },
    /// Two consecutive pages showed what `X-listCount` counts.
    CountMeaning(CountMeaning),
}

/// A list endpoint and what to ask it for.
#[derive(Debug, Clone)]
pub struct ListSpec {
    /// Path under the company: `sales-orders`.
    pub path: &'static str,
    /// The primary-key property: `salesOrderId`.
    pub id_field: &'static str,
    /// The `include` sent with every page (lines and the like), if any.
    pub include: Option<&'static str>,
    /// A smaller `include` for a server that refuses `include` (what is left out is fetched
    /// some other way by the caller, see [`Walk::include_fell_back`]).
    pub fallback_include: Option<&'static str>,
    /// `filter[...]` pairs and the like, sent with every page.
    pub filters: Vec<(&'static str, String)>,
}

/// Where and how a walk starts.
#[derive(Debug, Clone)]
pub struct WalkStart {
    /// The mode to page in.
    pub paging: Paging,
    /// The first page to ask for.
    pub position: Position,
    /// What the pass saw before (a resumed walk), or nothing.
    pub pass: Pass,
    /// What `X-listCount` counts, as learnt before.
    pub meaning: CountMeaning,
    /// Re-trying a mode that failed before: if it fails again, go to this one (without the
    /// usual retries, since a failure is the expected answer).
    pub probe_fallback: Option<Paging>,
}

impl WalkStart {
    /// A walk from the first page in `paging`, with nothing known about the server.
    pub fn fresh(paging: Paging) -> WalkStart {
        WalkStart {
            paging,
            position: Position::start(paging),
            pass: Pass::default(),
            meaning: CountMeaning::Unknown,
            probe_fallback: None,
        }
    }
}

/// One page of a walk.
#[derive(Debug)]
pub struct Page {
    /// The documents of the page not already seen in this pass, raw.
    pub items: Vec<Box<RawValue>>,
    /// Where the walk continues, in which mode, and what the pass saw: saved with the page.
    pub next: Position,
    /// The mode `next` is in.
    pub paging: Paging,
    /// What the pass has seen, this page included.
    pub pass: Pass,
    /// The end of the walk is proven after this page.
    pub last: bool,
    /// The first page of a pass that started the stream over in this run.
    pub restarted: bool,
}

/// The page before, in this pass.
#[derive(Debug)]
struct Previous {
    ids: Vec<Option<String>>,
    count: Option<u64>,
    /// Rows the position moved on by.
    moved_on: u64,
}

/// What a fetched page means.
enum Step {
    Page(Page),
    /// The page shows the server ignores the cursor: fall back.
    IgnoresCursor(String),
    /// An empty page at a cursor from an earlier run: is the cursor still there?
    EmptyAtStaleCursor,
}

/// A walk over one list endpoint.
pub struct Walk<'c> {
    client: &'c Client,
    /// The same client without retries, for probes.
    probe_client: Client,
    spec: ListSpec,
    paging: Paging,
    probe_fallback: Option<Paging>,
    position: Position,
    pass: Pass,
    meaning: CountMeaning,
    /// The cursor came from an earlier run and no page has confirmed it yet.
    stale: bool,
    previous: Option<Previous>,
    /// Ids seen in `skip` mode, where pages overlap.
    seen_ids: HashSet<String>,
    notes: Vec<WalkNote>,
    /// Fallbacks not yet confirmed by a page in the new mode: a mode is recorded only once it
    /// has worked (an outage fails every mode, and proves nothing about any).
    pending: Vec<WalkNote>,
    restarts: u32,
    /// The pass started over and its first page is not out yet.
    restarted: bool,
    /// This mode already started over for a cursor whose document was gone.
    lost_in_mode: bool,
    /// The cursor this walk resumed from, while nothing showed that its document still exists
    /// (a keyset page after it does not include it).
    origin: Option<String>,
    /// Asking for `fallback_include` instead of `include`.
    include_fell_back: bool,
    /// The fallback was tried with the current paging (it is tried once per paging mode).
    fallback_tried: bool,
    /// The fallback has been reported.
    fallback_warned: bool,
}

impl<'c> Walk<'c> {
    /// A walk from `position` in the mode it implies, with nothing known about the server.
    pub fn new(client: &'c Client, spec: ListSpec, position: Position) -> Walk<'c> {
        let start = WalkStart { paging: position.paging(), position, ..WalkStart::fresh(Paging::PREFERRED) };
        Walk::start(client, spec, start)
    }

    /// A walk as `start` says; a pass resumed mid-stream keeps what it saw, one at the start does not.
    pub fn start(client: &'c Client, spec: ListSpec, start: WalkStart) -> Walk<'c> {
        let probe_client = client.with_retry(RetryPolicy { max_retries: 0, ..client.config().retry });
        // A pass that starts over knows nothing; a resumed one keeps what it saw.
        let pass = if start.position.is_start() { Pass::default() } else { start.pass };
        let origin = match &start.position {
            Position::After(Some(id)) => Some(id.clone()),
            _ => None,
        };
        Walk {
            client,
            probe_client,
            spec,
            paging: start.paging,
            probe_fallback: start.probe_fallback,
            stale: !start.position.is_start(),
            position: start.position,
            pass,
            meaning: start.meaning,
            previous: None,
            seen_ids: HashSet::new(),
            notes: Vec::new(),
            pending: Vec::new(),
            restarts: 0,
            restarted: false,
            lost_in_mode: false,
            origin,
            include_fell_back: false,
            fallback_tried: false,
            fallback_warned: false,
        }
    }

    /// The pages come with `fallback_include`: the server refused the full `include`.
    pub fn include_fell_back(&self) -> bool {
        self.include_fell_back
    }

    /// What the next request asks for.
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// The mode the walk pages in now.
    pub fn paging(&self) -> Paging {
        self.paging
    }

    /// What `X-listCount` counts, as far as the walk knows.
    pub fn count_meaning(&self) -> CountMeaning {
        self.meaning
    }

    /// Why the current pass cannot prove it returned every document, if so.
    pub fn unproven(&self) -> Option<&str> {
        self.pass.unproven.as_deref()
    }

    /// The cursor this walk resumed from, unless the walk started over or saw that its
    /// document still exists: a document deleted there is one the walk cannot notice missing
    /// (it was seen before the stop), so the engine asks for it by id at the end.
    pub fn resumed_from(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// What happened since the last call.
    pub fn take_notes(&mut self) -> Vec<WalkNote> {
        std::mem::take(&mut self.notes)
    }

    fn warn_include_fallback(&mut self) {
        if self.include_fell_back && !self.fallback_warned {
            self.fallback_warned = true;
            tracing::warn!(
                "{}: the server refused include={}; asking for include={} and fetching the rest by id",
                self.spec.path,
                self.spec.include.unwrap_or_default(),
                self.spec.fallback_include.unwrap_or_default()
            );
        }
    }

    /// Fetches the next page. Returns the page and advances; the caller saves `page.next`,
    /// `page.paging` and `page.pass` with the page's data so a restart continues from there.
    pub async fn next_page(&mut self) -> Result<Page, ClientError> {
        loop {
            let (query, offset) = self.query();
            let what = format!("GET {} ({})", self.spec.path, self.describe(offset));
            let client = if self.probe_fallback.is_some() { &self.probe_client } else { self.client };
            let step = match client.get_array(self.spec.path, &query, &what).await {
                Ok(page) => {
                    self.warn_include_fallback();
                    self.advance(page, offset, &what)?
                }
                // The include may be what the server refuses: try the smaller one first (once
                // per paging mode; if the paging was the trouble, it fails again).
                Err(ClientError::Rejected { status: 400, body, .. })
                    if self.spec.fallback_include.is_some() && !self.fallback_tried =>
                {
                    tracing::debug!("{}: {what} refused ({body}); trying the smaller include", self.spec.path);
                    self.include_fell_back = true;
                    self.fallback_tried = true;
                    continue;
                }
                Err(err) => {
                    self.recover(err, &what).await?;
                    continue;
                }
            };
            match step {
                Step::Page(mut page) => {
                    self.notes.append(&mut self.pending);
                    page.restarted = std::mem::take(&mut self.restarted);
                    return Ok(page);
                }
                Step::IgnoresCursor(why) => self.fall_back(why, ClientError::Stuck { what })?,
                Step::EmptyAtStaleCursor => {
                    let Position::After(Some(cursor)) = self.position.clone() else { unreachable!("a cursor") };
                    if self.cursor_exists(&cursor).await? {
                        self.origin = None;
                        self.notes.append(&mut self.pending);
                        let mut page = self.end_here();
                        page.restarted = std::mem::take(&mut self.restarted);
                        return Ok(page);
                    }
                    let why = format!("after={cursor} answered an empty page, and inFlow no longer has that document");
                    self.restart_lost(cursor, why, ClientError::Stuck { what })?;
                }
            }
        }
    }

    /// The query of the next request, and the `skip` it asks for (0 in keyset modes).
    fn query(&self) -> (Vec<(&'static str, String)>, u64) {
        let mut q = vec![("count", PAGE_SIZE.to_string()), ("includeCount", "true".to_string())];
        let include = if self.include_fell_back { self.spec.fallback_include } else { self.spec.include };
        if let Some(include) = include {
            q.push(("include", include.to_string()));
        }
        q.extend(self.spec.filters.iter().cloned());
        if self.paging == Paging::Keyset {
            q.push(("sort", self.spec.id_field.to_string()));
        }
        let mut offset = 0;
        match &self.position {
            Position::After(after) => {
                if let Some(id) = after {
                    q.push(("after", id.clone()));
                }
            }
            Position::Skip { n, last } => {
                // One row back, to check that it is still the row seen last.
                offset = if last.is_some() { n.saturating_sub(1) } else { *n };
                q.push(("skip", offset.to_string()));
            }
        }
        (q, offset)
    }

    fn describe(&self, offset: u64) -> String {
        match (&self.position, self.paging) {
            (Position::Skip { .. }, _) if offset > 0 => format!("page at skip={offset}"),
            (position, Paging::KeysetUnsorted) => format!("{position}, unsorted"),
            (position, _) => position.to_string(),
        }
    }

    /// Whether the next request sends a paging parameter that could be what fails.
    fn uses_paging_parameters(&self) -> bool {
        match (&self.position, self.paging) {
            (_, Paging::Keyset) => true,
            (Position::After(cursor), _) => cursor.is_some(),
            (Position::Skip { n, .. }, _) => *n > 0,
        }
    }

    /// A failed request: start again in another mode or from the start when the paging is what
    /// failed; otherwise the error.
    async fn recover(&mut self, err: ClientError, what: &str) -> Result<(), ClientError> {
        let answered = match &err {
            ClientError::Rejected { status: 400, .. } => "HTTP 400".to_string(),
            ClientError::NotFound { .. } => "HTTP 404".to_string(),
            ClientError::GaveUp { status: Some(s), attempts, .. } if *s >= 500 => {
                format!("HTTP {s} on {attempts} attempt{}", if *attempts == 1 { "" } else { "s" })
            }
            _ => return Err(err),
        };
        let err = match err {
            ClientError::NotFound { .. } => match self.client.explain_not_found(self.spec.path, what).await {
                company @ ClientError::CompanyNotFound { .. } => return Err(company),
                other => other,
            },
            other => other,
        };
        if let ClientError::NotFound { what } = &err
            && self.position.is_start()
            && self.endpoint_missing().await?
        {
            // Locations and products are reference lists every account has; only a document
            // stream can be left out of a run.
            let stream = !matches!(self.spec.path, "locations" | "products");
            return Err(ClientError::Unavailable { what: what.clone(), path: self.spec.path.to_string(), stream });
        }
        if !self.uses_paging_parameters() {
            return Err(err);
        }
        // A cursor whose document is gone (deleted since it was saved, or since its page came)
        // explains the failure; once per mode, so that a server failing `after` whatever it
        // names still gets the next mode.
        if let Position::After(Some(cursor)) = self.position.clone()
            && !self.lost_in_mode
        {
            match self.cursor_exists(&cursor).await {
                Ok(false) => {
                    self.lost_in_mode = true;
                    let why = format!("after={cursor} answered {answered}, and inFlow no longer has that document");
                    return self.restart_lost(cursor, why, err);
                }
                // The document is there: the paging parameters are the trouble.
                Ok(true) => {}
                // The run's budget ended before the check: stop cleanly, the position stays.
                Err(ClientError::BudgetSpent) => return Err(ClientError::BudgetSpent),
                // Cannot tell: a saved position is not given up on a guess.
                Err(_) if self.stale => return Err(err),
                Err(_) => {}
            }
        }
        let params = match (&self.position, self.paging) {
            (Position::After(None), _) => "sort",
            (Position::After(Some(_)), Paging::Keyset) => "sort and after",
            (Position::After(Some(_)), _) => "after",
            (Position::Skip { .. }, _) => "skip",
        };
        self.fall_back(format!("the {} with {params} answered {answered}", self.describe_position()), err)
    }

    fn describe_position(&self) -> String {
        self.position.to_string()
    }

    /// After a 404 on the first page: does the list answer 404 without any paging parameter too?
    /// Then the endpoint is missing, and no paging mode is to blame. Without paging parameters
    /// the first page already was that request.
    async fn endpoint_missing(&self) -> Result<bool, ClientError> {
        if !self.uses_paging_parameters() {
            return Ok(true);
        }
        let what = format!("GET {} (is the endpoint there, after a 404 on its first page?)", self.spec.path);
        match self.client.get_array(self.spec.path, &[("count", "1".to_string())], &what).await {
            Ok(_) => Ok(false),
            Err(ClientError::NotFound { .. }) => Ok(true),
            Err(e @ (ClientError::BudgetSpent | ClientError::Stopped)) => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// Does the document a cursor names still exist? One request, by id.
    async fn cursor_exists(&self, cursor: &str) -> Result<bool, ClientError> {
        let what = format!("GET {}/{cursor} (the document of the saved position)", self.spec.path);
        Ok(self.client.get_document(self.spec.path, cursor, &[], &what).await?.is_some())
    }

    /// Goes on in the next mode from the start of the stream, or gives `err` when there is none.
    fn fall_back(&mut self, why: String, err: ClientError) -> Result<(), ClientError> {
        let to = match self.probe_fallback.take() {
            Some(recorded) => Some(recorded),
            None => self.paging.fallback(),
        };
        let Some(to) = to.filter(|_| self.restarts < MAX_RESTARTS) else { return Err(err) };
        self.restarts += 1;
        self.pending.push(WalkNote::FellBack { from: self.paging, to, why });
        self.paging = to;
        self.lost_in_mode = false;
        // It was the paging, perhaps not the include: ask for everything again.
        self.include_fell_back = false;
        self.fallback_tried = false;
        self.start_over();
        Ok(())
    }

    /// Starts the stream again in the same mode: the saved position is gone.
    fn restart_lost(&mut self, cursor: String, why: String, err: ClientError) -> Result<(), ClientError> {
        if self.restarts >= MAX_RESTARTS {
            return Err(err);
        }
        self.restarts += 1;
        self.notes.push(WalkNote::PositionLost { cursor, why });
        self.start_over();
        Ok(())
    }

    fn start_over(&mut self) {
        self.restarted = true;
        self.origin = None;
        self.position = Position::start(self.paging);
        self.pass = Pass::default();
        self.stale = false;
        self.previous = None;
        self.seen_ids.clear();
    }

    /// The walk ends where it stands (an empty page whose end was proven otherwise).
    fn end_here(&mut self) -> Page {
        self.stale = false;
        Page {
            items: Vec::new(),
            next: self.position.clone(),
            paging: self.paging,
            pass: self.pass.clone(),
            last: true,
            restarted: false,
        }
    }

    /// Whether the count shows nothing is left after a page of `fetched` rows (`pass.seen`
    /// already counting them). `relative` allows the proof that holds whatever the count
    /// counts, which needs the page's position to be a real one.
    fn count_proves_end(&self, count: Option<u64>, fetched: u64, relative: bool) -> bool {
        let Some(count) = count else { return false };
        (relative && count <= fetched)
            || (self.meaning == CountMeaning::Total
                && !self.pass.count_moved
                && self.pass.list_count == Some(count)
                && self.pass.seen >= count)
    }

    /// Records a page's count in the pass and learns what the count counts.
    fn note_count(&mut self, count: Option<u64>) {
        let Some(count) = count else { return };
        if let Some(prev) = &self.previous
            && let Some(before) = prev.count
        {
            let seen = CountMeaning::observed(before, prev.moved_on, count);
            if seen != CountMeaning::Unknown && seen != self.meaning {
                self.meaning = seen;
                self.notes.push(WalkNote::CountMeaning(seen));
            }
        }
        match self.pass.list_count {
            None if !self.pass.count_moved => self.pass.list_count = Some(count),
            Some(first) if first != count => self.pass.count_moved = true,
            _ => {}
        }
    }

    fn advance(&mut self, page: ArrayPage, offset: u64, what: &str) -> Result<Step, ClientError> {
        let ArrayPage { items, list_count, .. } = page;
        let fetched = items.len() as u64;
        let full = items.len() >= PAGE_SIZE;
        let ids: Vec<Option<String>> = items.iter().map(|item| id_of(item, self.spec.id_field)).collect();
        let stuck = || ClientError::Stuck { what: what.to_string() };
        match self.position.clone() {
            Position::After(cursor) => {
                if let Some(cursor) = &cursor {
                    let repeats = |id: &String| {
                        id == cursor || self.previous.as_ref().is_some_and(|p| p.ids.iter().flatten().any(|x| x == id))
                    };
                    if ids.iter().flatten().any(repeats) {
                        return Ok(Step::IgnoresCursor(format!(
                            "the page after {cursor} repeated documents already returned: the server ignores `after` in this mode"
                        )));
                    }
                }
                self.note_count(list_count);
                // An empty page at a cursor from an earlier run proves an end only if the count
                // does as a total (a count relative to a cursor the server may not know means
                // nothing); otherwise the cursor is checked.
                if fetched == 0 && cursor.is_some() && self.stale && !self.count_proves_end(list_count, 0, false) {
                    return Ok(Step::EmptyAtStaleCursor);
                }
                let last_id = ids.iter().rev().flatten().next().cloned();
                if fetched > 0 && last_id.is_none() {
                    return Err(stuck());
                }
                self.pass.seen += fetched;
                let last = fetched == 0 || (!full && self.count_proves_end(list_count, fetched, true));
                let next = Position::After(last_id.or(cursor));
                if fetched > 0 && cursor_confirmed(self.probe_fallback, &self.position) {
                    // `sort` and `after` both answered: the probed mode works.
                    self.probe_fallback = None;
                }
                self.stale = false;
                self.previous = Some(Previous { ids, count: list_count, moved_on: fetched });
                self.position = next.clone();
                Ok(Step::Page(Page {
                    items,
                    next,
                    paging: self.paging,
                    pass: self.pass.clone(),
                    last,
                    restarted: false,
                }))
            }
            Position::Skip { n, last: expected } => {
                // The same page twice means the server ignores `skip`.
                if fetched > 0 && self.previous.as_ref().is_some_and(|p| p.ids == ids) {
                    return Err(stuck());
                }
                let overlapping = offset < n;
                let matched = overlapping && ids.first().is_some_and(|first| first.is_some() && *first == expected);
                if overlapping && !matched && self.pass.unproven.is_none() {
                    self.pass.unproven = Some(format!(
                        "rows shifted between two skip pages (at skip={offset}): documents were added or deleted while walking"
                    ));
                }
                let new_rows = fetched - u64::from(matched);
                // The overlapping row came with the page before (perhaps in an earlier run).
                let fresh: Vec<Box<RawValue>> = items
                    .into_iter()
                    .zip(&ids)
                    .skip(usize::from(matched))
                    .filter(|(_, id)| id.as_ref().is_none_or(|id| self.seen_ids.insert(id.clone())))
                    .map(|(item, _)| item)
                    .collect();
                self.pass.seen += new_rows;
                self.note_count(list_count);
                let last = new_rows == 0 || (!full && self.count_proves_end(list_count, fetched, true));
                let next = if fetched == 0 {
                    Position::Skip { n, last: expected }
                } else {
                    Position::Skip { n: offset + fetched, last: ids.last().cloned().flatten() }
                };
                // What the next request's offset moves on by (its count, if relative, falls by it).
                let next_offset = match &next {
                    Position::Skip { n, last: Some(_) } => n.saturating_sub(1),
                    Position::Skip { n, .. } => *n,
                    Position::After(_) => unreachable!("skip mode"),
                };
                self.stale = false;
                self.previous = Some(Previous { ids, count: list_count, moved_on: next_offset.saturating_sub(offset) });
                self.position = next.clone();
                Ok(Step::Page(Page {
                    items: fresh,
                    next,
                    paging: self.paging,
                    pass: self.pass.clone(),
                    last,
                    restarted: false,
                }))
            }
        }
    }
}

/// A probe is over once a page came back for a cursor in the probed mode.
fn cursor_confirmed(probe: Option<Paging>, position: &Position) -> bool {
    probe.is_some() && matches!(position, Position::After(Some(_)))
}

/// Reads one string property of a JSON object without building the rest of it.
pub fn id_of(item: &RawValue, field: &str) -> Option<String> {
    let mut de = serde_json::Deserializer::from_str(item.get());
    FieldSeed(field).deserialize(&mut de).ok().flatten()
}

struct FieldSeed<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Option<String>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.0 && found.is_none() {
                found = match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(s) => Some(s),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_passes_round_trip_their_stored_form() {
        for p in [
            Position::START,
            Position::After(Some("abc-1".into())),
            Position::Skip { n: 300, last: None },
            Position::Skip { n: 300, last: Some("abc-2".into()) },
        ] {
            assert_eq!(Position::decode(&p.encode()), p);
        }
        assert_eq!(Position::decode("garbage"), Position::START);
        assert_eq!(Position::decode("skip:12:"), Position::Skip { n: 12, last: None });
        let pass = Pass { seen: 230, list_count: Some(300), count_moved: false, unproven: None };
        assert_eq!(Pass::from_stored(Some(230), pass.stored_count(), None), pass);
        let moved = Pass { count_moved: true, list_count: None, ..pass.clone() };
        assert_eq!(moved.stored_count(), Some(-1));
        assert_eq!(Pass::from_stored(Some(230), Some(-1), None), moved);
        for p in [Paging::Keyset, Paging::KeysetUnsorted, Paging::Skip] {
            assert_eq!(Paging::parse(p.as_str()), Some(p));
        }
        assert_eq!(Paging::Keyset.fallback(), Some(Paging::KeysetUnsorted));
        assert_eq!(Paging::Skip.fallback(), None);
    }

    #[test]
    fn two_counted_pages_tell_what_the_count_counts() {
        assert_eq!(CountMeaning::observed(166, 100, 166), CountMeaning::Total);
        assert_eq!(CountMeaning::observed(166, 100, 66), CountMeaning::Remaining);
        assert_eq!(CountMeaning::observed(166, 100, 70), CountMeaning::Unknown, "data changed in between");
        assert_eq!(CountMeaning::observed(5, 0, 5), CountMeaning::Unknown, "nothing moved: cannot tell");
    }

    fn docs(ids: impl Iterator<Item = Option<String>>) -> Vec<Box<RawValue>> {
        ids.map(|id| {
            let doc = match id {
                Some(id) => serde_json::json!({ "salesOrderId": id }),
                None => serde_json::json!({ "orderNumber": "SO-1" }),
            };
            RawValue::from_string(doc.to_string()).unwrap()
        })
        .collect()
    }

    fn named(prefix: &str, range: std::ops::Range<usize>) -> Vec<Box<RawValue>> {
        docs(range.map(|i| Some(format!("{prefix}-{i:03}"))))
    }

    fn page(items: Vec<Box<RawValue>>, count: Option<u64>) -> ArrayPage {
        ArrayPage { items, list_count: count, rate_minute: None, rate_hour: None }
    }

    fn client() -> Client {
        Client::new(super::super::ClientConfig::new("http://127.0.0.1:9", "c", super::super::ApiKey::new("k"))).unwrap()
    }

    fn walk(client: &Client, start: WalkStart) -> Walk<'_> {
        let spec = ListSpec {
            path: "sales-orders",
            id_field: "salesOrderId",
            include: None,
            fallback_include: None,
            filters: Vec::new(),
        };
        Walk::start(client, spec, start)
    }

    /// Feeds a page to the walk as if it had been fetched at its current position.
    fn feed(w: &mut Walk<'_>, items: Vec<Box<RawValue>>, count: Option<u64>) -> Result<Step, ClientError> {
        let (_, offset) = w.query();
        w.advance(page(items, count), offset, "GET sales-orders (test)")
    }

    fn take_page(step: Result<Step, ClientError>) -> Page {
        match step {
            Ok(Step::Page(p)) => p,
            Ok(Step::IgnoresCursor(why)) => panic!("ignores the cursor: {why}"),
            Ok(Step::EmptyAtStaleCursor) => panic!("empty at a stale cursor"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_short_page_ends_the_walk_only_when_the_count_proves_it() {
        let client = client();
        // No count: a short page proves nothing (a cap), the empty page after it does.
        let mut w = walk(&client, WalkStart::fresh(Paging::Keyset));
        let p = take_page(feed(&mut w, named("a", 0..30), None));
        assert!(!p.last);
        assert_eq!(p.next, Position::After(Some("a-029".into())));
        assert!(take_page(feed(&mut w, Vec::new(), None)).last);

        // A count no larger than the page ends it whatever the count counts.
        let mut w = walk(&client, WalkStart::fresh(Paging::Keyset));
        assert!(take_page(feed(&mut w, named("a", 0..66), Some(66))).last);

        // A cap of 30 on a total of 80: the count stays, so it counts the total; the pass
        // reaches it on the third short page.
        let mut w = walk(&client, WalkStart::fresh(Paging::Keyset));
        assert!(!take_page(feed(&mut w, named("a", 0..30), Some(80))).last);
        let p = take_page(feed(&mut w, named("a", 30..60), Some(80)));
        assert!(!p.last);
        assert_eq!(w.count_meaning(), CountMeaning::Total);
        assert_eq!(w.take_notes(), [WalkNote::CountMeaning(CountMeaning::Total)]);
        let p = take_page(feed(&mut w, named("a", 60..80), Some(80)));
        assert!(p.last, "80 of 80 returned");
        assert_eq!(p.pass.seen, 80);

        // The same with a count of what remains: it falls by each page.
        let mut w = walk(&client, WalkStart::fresh(Paging::Keyset));
        assert!(!take_page(feed(&mut w, named("a", 0..30), Some(80))).last);
        assert!(!take_page(feed(&mut w, named("a", 30..60), Some(50))).last);
        assert_eq!(w.count_meaning(), CountMeaning::Remaining);
        assert!(take_page(feed(&mut w, named("a", 60..80), Some(20))).last);

        // A full page never ends a walk, even when the count is reached.
        let mut w = walk(&client, WalkStart::fresh(Paging::Keyset));
        assert!(!take_page(feed(&mut w, named("a", 0..100), Some(100))).last);
        assert!(take_page(feed(&mut w, Vec::new(), Some(100))).last);
    }

    #[test]
    fn a_total_that_moved_during_the_pass_proves_no_end() {
        let client = client();
        let start = WalkStart { meaning: CountMeaning::Total, ..WalkStart::fresh(Paging::Keyset) };
        let mut w = walk(&client, start);
        assert!(!take_page(feed(&mut w, named("a", 0..30), Some(300))).last);
        // 200 documents before the cursor were deleted: the total fell to 100 while 210 remain
        // after it. The pass soon returns more than 100 documents; that must not end it.
        assert!(!take_page(feed(&mut w, named("a", 30..60), Some(100))).last);
        let p = take_page(feed(&mut w, named("a", 60..90), Some(100)));
        assert!(!p.last);
        let p = take_page(feed(&mut w, named("a", 90..120), Some(100)));
        assert!(!p.last, "the count moved: only an empty page (or a count within the page) ends this pass");
        assert!(p.pass.count_moved && p.pass.stored_count() == Some(-1));
        assert!(take_page(feed(&mut w, Vec::new(), Some(100))).last);
    }

    #[test]
    fn a_page_that_repeats_what_came_before_shows_the_cursor_is_ignored() {
        let client = client();
        let mut w = walk(&client, WalkStart::fresh(Paging::Keyset));
        take_page(feed(&mut w, named("a", 0..100), None));
        // The first page again.
        assert!(matches!(feed(&mut w, named("a", 0..100), None), Ok(Step::IgnoresCursor(_))));
        // A page starting at the cursor itself (`start` semantics) too.
        let mut w = walk(&client, WalkStart::fresh(Paging::Keyset));
        take_page(feed(&mut w, named("a", 0..100), None));
        assert!(matches!(feed(&mut w, named("a", 99..150), None), Ok(Step::IgnoresCursor(_))));
        // Ids that do not ascend as text are fine (SQL Server orders GUIDs its own way).
        let mut w = walk(&client, WalkStart::fresh(Paging::Keyset));
        take_page(feed(&mut w, named("m", 0..100), None));
        let p = take_page(feed(&mut w, named("b", 0..10), Some(110)));
        assert_eq!(p.next, Position::After(Some("b-009".into())));
        // A page of documents without ids cannot move the walk on.
        let mut w = walk(&client, WalkStart::fresh(Paging::Keyset));
        assert!(matches!(feed(&mut w, docs((0..100).map(|_| None)), None), Err(ClientError::Stuck { .. })));
    }

    #[test]
    fn an_empty_page_at_a_cursor_from_an_earlier_run_is_checked_unless_a_total_proves_it() {
        let client = client();
        let resumed = |pass: Pass, meaning| WalkStart {
            paging: Paging::Keyset,
            position: Position::After(Some("a-149".into())),
            pass,
            meaning,
            probe_fallback: None,
        };
        let pass = Pass { seen: 150, list_count: Some(150), ..Pass::default() };
        // Without a count, or with a count relative to a cursor the server may not know: check.
        let mut w = walk(&client, resumed(pass.clone(), CountMeaning::Unknown));
        assert!(matches!(feed(&mut w, Vec::new(), None), Ok(Step::EmptyAtStaleCursor)));
        let mut w = walk(&client, resumed(pass.clone(), CountMeaning::Remaining));
        assert!(matches!(feed(&mut w, Vec::new(), Some(0)), Ok(Step::EmptyAtStaleCursor)));
        // A total the pass has reached, unchanged since the pass began: the end.
        let mut w = walk(&client, resumed(pass.clone(), CountMeaning::Total));
        assert!(take_page(feed(&mut w, Vec::new(), Some(150))).last);
        // A total the pass has not reached: check.
        let mut w = walk(&client, resumed(pass, CountMeaning::Total));
        assert!(matches!(feed(&mut w, Vec::new(), Some(400)), Ok(Step::EmptyAtStaleCursor)));
    }

    #[test]
    fn skip_pages_overlap_by_a_row_to_prove_nothing_shifted() {
        let client = client();
        let mut w = walk(&client, WalkStart::fresh(Paging::Skip));
        assert_eq!(w.query().1, 0);
        assert!(w.query().0.iter().any(|(k, v)| *k == "includeCount" && v == "true"), "{:?}", w.query().0);
        let p = take_page(feed(&mut w, named("a", 0..100), None));
        assert_eq!(p.next, Position::Skip { n: 100, last: Some("a-099".into()) });
        assert_eq!(w.query().1, 99, "one row back");
        // The row seen last comes first again: nothing shifted; 99 new rows.
        let p = take_page(feed(&mut w, named("a", 99..199), None));
        assert_eq!(p.items.len(), 99);
        assert_eq!(p.pass.seen, 199);
        assert!(w.unproven().is_none());
        // A row before the offset was deleted: the page starts one row later.
        let p = take_page(feed(&mut w, named("a", 199..230), None));
        assert!(!p.last);
        assert!(w.unproven().is_some_and(|why| why.contains("shifted")), "{:?}", w.unproven());
        // Only the overlapping row: nothing new, the end.
        let p = take_page(feed(&mut w, named("a", 229..230), None));
        assert!(p.last && p.items.is_empty());
        assert!(p.pass.unproven.is_some(), "the pass stays unproven");
        // The very same page twice means the server ignores `skip`.
        let mut w = walk(&client, WalkStart::fresh(Paging::Skip));
        take_page(feed(&mut w, named("a", 0..100), None));
        assert!(matches!(feed(&mut w, named("a", 0..100), None), Err(ClientError::Stuck { .. })));
    }

    #[test]
    fn ids_are_read_without_parsing_the_whole_document() {
        let raw = RawValue::from_string(r#"{"lines":[{"salesOrderId":"nested"}],"salesOrderId":"abc","x":1}"#.into())
            .unwrap();
        assert_eq!(id_of(&raw, "salesOrderId").as_deref(), Some("abc"));
        assert_eq!(id_of(&raw, "purchaseOrderId"), None);
        let not_object = RawValue::from_string("[1]".into()).unwrap();
        assert_eq!(id_of(&not_object, "salesOrderId"), None);
    }
}
