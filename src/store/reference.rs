//! Reference data: locations, products, customers and vendors, so that output can show names.

use chrono::Utc;
use sqlx::QueryBuilder;

use super::{Context, Store, StoreError, WritePool, on_pool};

/// A location as stored (the store knows nothing of inFlow's shapes).
#[derive(Debug, Clone, Copy)]
pub struct LocationRow<'a> {
    /// inFlow's id.
    pub location_id: &'a str,
    /// Its name.
    pub name: Option<&'a str>,
    /// Whether inFlow shows it as active.
    pub is_active: Option<bool>,
    /// inFlow's `timestamp` of it.
    pub row_version: Option<&'a str>,
}

/// A product as stored.
#[derive(Debug, Clone, Copy)]
pub struct ProductRow<'a> {
    /// inFlow's id.
    pub product_id: &'a str,
    /// Its name.
    pub name: Option<&'a str>,
    /// Its SKU.
    pub sku: Option<&'a str>,
    /// Whether it is serialized.
    pub track_serials: bool,
    /// Whether inFlow shows it as active.
    pub is_active: Option<bool>,
    /// inFlow's item type.
    pub item_type: Option<&'a str>,
    /// inFlow's `timestamp` of it.
    pub row_version: Option<&'a str>,
}

/// A customer or a vendor as stored.
#[derive(Debug, Clone, Copy)]
pub struct PartyRow<'a> {
    /// inFlow's `customerId` or `vendorId`.
    pub party_id: &'a str,
    /// Its name.
    pub name: Option<&'a str>,
    /// Whether inFlow shows it as active.
    pub is_active: Option<bool>,
    /// inFlow's `timestamp` of it.
    pub row_version: Option<&'a str>,
}

/// Which party table: the customers of sales orders or the vendors of purchase orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parties {
    /// `customers`.
    Customers,
    /// `vendors`.
    Vendors,
}

impl Parties {
    /// The table, which is also the inFlow list's path and its owed walk's stream name.
    pub fn table(self) -> &'static str {
        match self {
            Parties::Customers => "customers",
            Parties::Vendors => "vendors",
        }
    }

    /// The id column, e.g. `customer_id`.
    pub fn id_column(self) -> &'static str {
        match self {
            Parties::Customers => "customer_id",
            Parties::Vendors => "vendor_id",
        }
    }

    /// inFlow's id property, e.g. `customerId`.
    pub fn id_field(self) -> &'static str {
        match self {
            Parties::Customers => "customerId",
            Parties::Vendors => "vendorId",
        }
    }
}

impl Store {
    /// Inserts or refreshes customers or vendors; ones with an id too long to index are skipped.
    pub async fn upsert_parties(
        &self,
        company_id: &str,
        which: Parties,
        parties: &[PartyRow<'_>],
    ) -> Result<u64, StoreError> {
        let (table, column) = (which.table(), which.id_column());
        let rows: Vec<&PartyRow> = parties.iter().filter(|p| indexable(p.party_id, table)).collect();
        if rows.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        let what = || format!("saving {table}");
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await.context(what)?;
            for chunk in rows.chunks(500) {
                let mut q = QueryBuilder::new(format!(
                    "INSERT INTO {table} (company_id, {column}, name, is_active, row_version, updated_at) "
                ));
                q.push_values(chunk, |mut row, p| {
                    row.push_bind(company_id)
                        .push_bind(p.party_id)
                        .push_bind(p.name)
                        .push_bind(p.is_active)
                        .push_bind(p.row_version)
                        .push_bind(now);
                });
                q.push(format!(
                    " ON CONFLICT (company_id, {column}) DO UPDATE SET name = excluded.name, \
                     is_active = excluded.is_active, row_version = excluded.row_version, updated_at = excluded.updated_at"
                ));
                q.build().persistent(false).execute(&mut *tx).await.context(what)?;
            }
            tx.commit().await.context(what)?;
            Ok(rows.len() as u64)
        })
    }

    /// Whether any location of the company is stored.
    pub async fn has_locations(&self, company_id: &str) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM locations WHERE company_id = $1")
                .bind(company_id)
                .fetch_one(pool)
                .await
                .context(|| "reading locations".into())?;
            Ok(n > 0)
        })
    }

    /// Product names and SKUs by id.
    pub async fn product_names(
        &self,
        company_id: &str,
    ) -> Result<std::collections::HashMap<String, String>, StoreError> {
        on_pool!(self, pool => {
            let rows: Vec<(String, Option<String>, Option<String>)> =
                sqlx::query_as("SELECT product_id, name, sku FROM products WHERE company_id = $1")
                    .bind(company_id)
                    .fetch_all(pool)
                    .await
                    .context(|| "reading product names".into())?;
            Ok(rows.into_iter().map(|(id, name, sku)| { let label = name.or(sku).unwrap_or_else(|| id.clone()); (id, label) }).collect())
        })
    }

    /// Inserts or refreshes locations; ones with an id too long to index are skipped.
    pub async fn upsert_locations(&self, company_id: &str, locations: &[LocationRow<'_>]) -> Result<u64, StoreError> {
        let rows: Vec<&LocationRow> = locations.iter().filter(|l| indexable(l.location_id, "location")).collect();
        if rows.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await.context(|| "saving locations".into())?;
            for chunk in rows.chunks(500) {
                let mut q = QueryBuilder::new("INSERT INTO locations (company_id, location_id, name, is_active, row_version, updated_at) ");
                q.push_values(chunk, |mut row, l| {
                    row.push_bind(company_id)
                        .push_bind(l.location_id)
                        .push_bind(l.name)
                        .push_bind(l.is_active)
                        .push_bind(l.row_version)
                        .push_bind(now);
                });
                q.push(
                    " ON CONFLICT (company_id, location_id) DO UPDATE SET name = excluded.name, \
                     is_active = excluded.is_active, row_version = excluded.row_version, updated_at = excluded.updated_at",
                );
                q.build().persistent(false).execute(&mut *tx).await.context(|| "saving locations".into())?;
            }
            tx.commit().await.context(|| "saving locations".into())?;
            Ok(rows.len() as u64)
        })
    }

    /// Inserts or refreshes products; ones with an id too long to index are skipped.
    pub async fn upsert_products(&self, company_id: &str, products: &[ProductRow<'_>]) -> Result<u64, StoreError> {
        let rows: Vec<&ProductRow> = products.iter().filter(|p| indexable(p.product_id, "product")).collect();
        if rows.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await.context(|| "saving products".into())?;
            for chunk in rows.chunks(500) {
                let mut q = QueryBuilder::new(
                    "INSERT INTO products (company_id, product_id, name, sku, track_serials, is_active, item_type, row_version, updated_at) ",
                );
                q.push_values(chunk, |mut row, p| {
                    row.push_bind(company_id)
                        .push_bind(p.product_id)
                        .push_bind(p.name)
                        .push_bind(p.sku)
                        .push_bind(p.track_serials)
                        .push_bind(p.is_active)
                        .push_bind(p.item_type)
                        .push_bind(p.row_version)
                        .push_bind(now);
                });
                q.push(
                    " ON CONFLICT (company_id, product_id) DO UPDATE SET name = excluded.name, sku = excluded.sku, \
                     track_serials = excluded.track_serials, is_active = excluded.is_active, item_type = excluded.item_type, \
                     row_version = excluded.row_version, updated_at = excluded.updated_at",
                );
                q.build().persistent(false).execute(&mut *tx).await.context(|| "saving products".into())?;
            }
            tx.commit().await.context(|| "saving products".into())?;
            Ok(rows.len() as u64)
        })
    }
}

/// Whether a reference row's id is short enough for the primary key's index.
fn indexable(id: &str, what: &str) -> bool {
    if id.len() > super::write::MAX_KEY_BYTES {
        tracing::warn!("a {what} id of {} bytes is too long to store; that {what} is left out", id.len());
        return false;
    }
    true
}
