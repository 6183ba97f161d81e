//! Genealogy: which component serials manufacturing orders built into which finished serials.
//!
//! The ingest writes `genealogy_links` with each derived order (its rows are replaced, see
//! `ReplaceLinks`); the timeline reads the `serial_genealogy` view level by level.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::QueryBuilder;

use super::write::push_in;
use super::{Context, Store, StoreError, on_pool};
use crate::mapping::Derived;

/// Rows per INSERT: 13 parameters each.
const CHUNK: usize = 250;

/// Replaces the links of derived documents with what they derive now (nothing for a
/// cancelled one).
pub(crate) trait ReplaceLinks {
    async fn replace_links(
        &mut self,
        company_id: &str,
        docs: &[&Derived],
        observed_at: DateTime<Utc>,
        run_id: i64,
    ) -> Result<(), sqlx::Error>;
}

macro_rules! impl_replace_links {
    ($conn:ty, $db:ty) => {
        impl ReplaceLinks for $conn {
            async fn replace_links(
                &mut self,
                company_id: &str,
                docs: &[&Derived],
                observed_at: DateTime<Utc>,
                run_id: i64,
            ) -> Result<(), sqlx::Error> {
                for chunk in docs.chunks(CHUNK) {
                    let ids: Vec<&str> = chunk.iter().map(|d| d.doc_id.as_str()).collect();
                    let mut q = QueryBuilder::<$db>::new("DELETE FROM genealogy_links WHERE company_id = ");
                    q.push_bind(company_id).push(" AND doc_type = ").push_bind(chunk[0].doc_type.as_str());
                    push_in(&mut q, " AND doc_id", &ids);
                    q.build().persistent(false).execute(&mut *self).await?;
                }
                let links: Vec<(&Derived, &crate::mapping::LinkDraft)> =
                    docs.iter().flat_map(|d| d.links.iter().map(move |l| (*d, l))).collect();
                for chunk in links.chunks(CHUNK) {
                    let mut q = QueryBuilder::<$db>::new(
                        "INSERT INTO genealogy_links (company_id, doc_type, doc_id, doc_number, order_status, \
                         component_serial, component_product_id, finished_serial, finished_product_id, built_at, \
                         matched_to, observed_at, run_id) ",
                    );
                    q.push_values(chunk, |mut row, (d, l)| {
                        row.push_bind(company_id)
                            .push_bind(d.doc_type.as_str())
                            .push_bind(&d.doc_id)
                            .push_bind(&d.doc_number)
                            .push_bind(&d.doc_status)
                            .push_bind(&l.component_serial)
                            .push_bind(&l.component_product_id)
                            .push_bind(&l.finished_serial)
                            .push_bind(&l.finished_product_id)
                            .push_bind(l.built_at)
                            .push_bind(l.matched_to.as_str())
                            .push_bind(observed_at)
                            .push_bind(run_id);
                    });
                    q.build().persistent(false).execute(&mut *self).await?;
                }
                Ok(())
            }
        }
    };
}

impl_replace_links!(sqlx::SqliteConnection, sqlx::Sqlite);
impl_replace_links!(sqlx::PgConnection, sqlx::Postgres);

pub(crate) async fn replace_links<C: ReplaceLinks + ?Sized>(
    conn: &mut C,
    company_id: &str,
    docs: &[&Derived],
    observed_at: DateTime<Utc>,
    run_id: i64,
) -> Result<(), sqlx::Error> {
    conn.replace_links(company_id, docs, observed_at, run_id).await
}

/// A row of `serial_genealogy`: one component serial built into one finished serial.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, Serialize)]
pub struct GenealogyRow {
    /// The inFlow company of the order.
    pub company_id: String,
    /// The serial of the component.
    pub component_serial: String,
    /// The component's product.
    pub component_product_id: Option<String>,
    /// That product's name, where `products` has it.
    pub component_product_name: Option<String>,
    /// The serial of the finished unit it went into.
    pub finished_serial: String,
    /// The finished unit's product.
    pub finished_product_id: Option<String>,
    /// That product's name, where `products` has it.
    pub finished_product_name: Option<String>,
    /// The type of the document that built it (`manufacturing_order`).
    pub doc_type: String,
    /// That order's inFlow id.
    pub doc_id: String,
    /// That order's number.
    pub doc_number: Option<String>,
    /// The order's status when it was last derived.
    pub order_status: Option<String>,
    /// When the finished unit was put away; `None` while the order is not completed.
    pub built_at: Option<DateTime<Utc>>,
    /// `unit`, `line` or `order`: how closely the link is known.
    pub matched_to: String,
}

/// Which side of a link the serials asked about are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The serials are finished units: their components.
    Components,
    /// The serials are components: the units they were built into.
    BuiltInto,
}

const COLUMNS: &str = "SELECT company_id, component_serial, component_product_id, component_product_name, \
     finished_serial, finished_product_id, finished_product_name, doc_type, doc_id, doc_number, order_status, \
     built_at, matched_to FROM serial_genealogy WHERE ";

/// Links in the order people read them: by build time (unfinished last), order and serials.
fn sort(rows: &mut [GenealogyRow]) {
    rows.sort_by(|a, b| {
        (a.built_at.is_none(), a.built_at, &a.doc_number, &a.component_serial, &a.finished_serial).cmp(&(
            b.built_at.is_none(),
            b.built_at,
            &b.doc_number,
            &b.component_serial,
            &b.finished_serial,
        ))
    });
}

impl Store {
    /// Every link of one serial string, as a component or as a finished unit (one query).
    pub async fn genealogy_of(&self, serial: &str, company_id: Option<&str>) -> Result<Vec<GenealogyRow>, StoreError> {
        let mut rows: Vec<GenealogyRow> = on_pool!(self, pool => {
            let mut q = QueryBuilder::new(COLUMNS);
            q.push("component_serial = ").push_bind(serial);
            if let Some(company) = company_id {
                q.push(" AND company_id = ").push_bind(company);
            }
            q.push(" UNION ALL ").push(COLUMNS).push("finished_serial = ").push_bind(serial);
            if let Some(company) = company_id {
                q.push(" AND company_id = ").push_bind(company);
            }
            q.build_query_as::<GenealogyRow>()
                .persistent(false)
                .fetch_all(pool)
                .await
                .context(|| format!("reading the genealogy of serial {serial:?}"))?
        });
        sort(&mut rows);
        Ok(rows)
    }

    /// The links of these serials, from one side, ordered for display.
    pub async fn genealogy(
        &self,
        serials: &[String],
        side: Side,
        company_id: Option<&str>,
    ) -> Result<Vec<GenealogyRow>, StoreError> {
        if serials.is_empty() {
            return Ok(Vec::new());
        }
        let column = match side {
            Side::Components => "finished_serial",
            Side::BuiltInto => "component_serial",
        };
        let mut out = Vec::new();
        for chunk in serials.chunks(CHUNK) {
            let rows: Vec<GenealogyRow> = on_pool!(self, pool => {
                let mut q = QueryBuilder::new(COLUMNS);
                push_in(&mut q, column, chunk);
                if let Some(company) = company_id {
                    q.push(" AND company_id = ").push_bind(company);
                }
                q.build_query_as::<GenealogyRow>()
                    .persistent(false)
                    .fetch_all(pool)
                    .await
                    .context(|| "reading the genealogy of serials".to_string())?
            });
            out.extend(rows);
        }
        sort(&mut out);
        Ok(out)
    }
}
