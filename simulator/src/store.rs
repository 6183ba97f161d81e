//! The served company: catalog, documents, inventory and the rowversion counter, with the
//! renderers the routes call and the mutations tests call while a client is paging.
//!
//! Mutations follow the `rowversion` model (§3 of the reference): every write takes new
//! values from the one company-wide counter. Editing a line writes the header first and then
//! the line, so the edited line's timestamp ends up above the header's; untouched lines keep
//! theirs. Cancelling, un-cancelling and re-dating write the header only. Deleting removes the
//! document (the reference says deleted documents simply disappear). After each mutation the
//! products' `inventoryLines` are corrected by the difference between the document's old and
//! new stock movements (see `inventory.rs`), and the rows that changed get new timestamps.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, FixedOffset};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use uuid::Uuid;

use super::SimError;
use super::data::*;
use super::inventory::{self, InvKey, Inventory, Movement};
use super::paging::{ApiError, FieldCtx, ListQuery};
use super::render::{self, Ctx, Includes};
use super::scenario::Scenario;

pub(crate) struct State {
    pub cat: Catalog,
    pub docs: Docs,
    pub inv: Inventory,
    pub rowversion: u64,
    pub rng: ChaCha8Rng,
    pub scenario: Scenario,
    /// Whether the adjustments completed counts make are listed (`SimConfig::count_adjustments`).
    pub count_adjustments: bool,
    /// The newer manufacturing-order shape (`SimConfig::newer_manufacturing_fields`).
    pub newer_manufacturing: bool,
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError { status: 500, code: "InternalError", message: e.to_string(), detail: None }
}

fn doc_endpoint(endpoint: &str) -> Result<Endpoint, SimError> {
    match Endpoint::parse(endpoint) {
        Some(e) if Endpoint::DOCUMENTS.contains(&e) => Ok(e),
        _ => Err(SimError::UnknownEndpoint(endpoint.to_string())),
    }
}

fn parse_uuid(what: &str, s: &str) -> Result<Uuid, SimError> {
    Uuid::parse_str(s.trim()).map_err(|_| SimError::InvalidDocument(format!("{what} '{s}' is not a GUID")))
}

impl State {
    fn ctx(&self) -> (Ctx<'_>, FieldCtx<'_>) {
        (Ctx { cat: &self.cat, inv: &self.inv }, FieldCtx { cat: &self.cat, inv: &self.inv })
    }

    fn product_pos(&self, p: &Product) -> u32 {
        self.cat.product_index.get(&p.id).copied().unwrap_or(0)
    }

    /// An adjustment a count made is served only when counts are switched to make listed ones.
    fn listed(&self, sa: &StockAdjustment) -> bool {
        sa.from_count.is_none() || self.count_adjustments
    }

    /// A count sheet by id, with its count's id.
    fn sheet(&self, id: Uuid) -> Option<(&CountSheet, Uuid)> {
        self.docs.counts.values().find_map(|c| c.sheets.iter().find(|s| s.id == id).map(|s| (s, c.id)))
    }

    /// A list page as JSON bytes, and the filtered total for `X-listCount`.
    pub fn list_json(&self, endpoint: Endpoint, q: &ListQuery) -> Result<(Vec<u8>, usize), ApiError> {
        let (rcx, fcx) = self.ctx();
        let inc = &q.includes;
        macro_rules! docs {
            ($table:expr, $render:path) => {{
                let (page, total) = q.run_id_ordered($table.values(), |id| $table.get(&id), &fcx)?;
                let wire: Vec<_> = page.into_iter().map(|d| $render(d, &rcx, inc)).collect();
                (serde_json::to_vec(&wire).map_err(internal)?, total)
            }};
        }
        let newer = self.newer_manufacturing;
        Ok(match endpoint {
            Endpoint::SalesOrders => docs!(self.docs.sales_orders, render::sales_order),
            Endpoint::PurchaseOrders => docs!(self.docs.purchase_orders, render::purchase_order),
            Endpoint::StockAdjustments => {
                let table = &self.docs.adjustments;
                let (page, total) = q.run_id_ordered(
                    table.values().filter(|a| self.listed(a)),
                    |id| table.get(&id).filter(|a| self.listed(a)),
                    &fcx,
                )?;
                let wire: Vec<_> = page.into_iter().map(|d| render::adjustment(d, &rcx, inc)).collect();
                (serde_json::to_vec(&wire).map_err(internal)?, total)
            }
            Endpoint::StockTransfers => docs!(self.docs.transfers, render::transfer),
            Endpoint::ManufacturingOrders => {
                let table = &self.docs.manufacturing_orders;
                let (page, total) = q.run_id_ordered(table.values(), |id| table.get(&id), &fcx)?;
                let wire: Vec<_> = page.into_iter().map(|d| render::manufacturing_order(d, &rcx, inc, newer)).collect();
                (serde_json::to_vec(&wire).map_err(internal)?, total)
            }
            Endpoint::StockCounts => docs!(self.docs.counts, render::stock_count),
            Endpoint::CountSheets => return Err(ApiError::not_found("count-sheets are served by id only")),
            Endpoint::Products => {
                let (page, total) = q.run(
                    self.cat.products.iter(),
                    |id| {
                        let i = *self.cat.product_index.get(&id)?;
                        self.cat.products.get(i as usize)
                    },
                    &fcx,
                )?;
                let wire: Vec<_> =
                    page.into_iter().map(|p| render::product(&rcx, self.product_pos(p), inc, true)).collect();
                (serde_json::to_vec(&wire).map_err(internal)?, total)
            }
            Endpoint::Locations => {
                let (page, total) = q.run(
                    self.cat.locations.iter(),
                    |id| {
                        let i = *self.cat.location_index.get(&id)?;
                        self.cat.locations.get(i as usize)
                    },
                    &fcx,
                )?;
                let wire: Vec<_> = page.into_iter().map(render::location).collect();
                (serde_json::to_vec(&wire).map_err(internal)?, total)
            }
            Endpoint::Customers | Endpoint::Vendors => {
                let parties = self.parties(endpoint);
                let (page, total) = q.run(parties.iter(), |id| parties.iter().find(|p| p.id == id), &fcx)?;
                let wire: Vec<_> = page.into_iter().map(|p| render::party(endpoint, p)).collect();
                (serde_json::to_vec(&wire).map_err(internal)?, total)
            }
        })
    }

    /// One entity as JSON bytes.
    pub fn one_json(&self, endpoint: Endpoint, id: Uuid, inc: &Includes) -> Result<Vec<u8>, ApiError> {
        let (rcx, _) = self.ctx();
        let missing = || ApiError::not_found(format!("No {endpoint} entity with id {id}"));
        let bytes = match endpoint {
            Endpoint::SalesOrders => {
                let d = self.docs.sales_orders.get(&id).ok_or_else(missing)?;
                serde_json::to_vec(&render::sales_order(d, &rcx, inc))
            }
            Endpoint::PurchaseOrders => {
                let d = self.docs.purchase_orders.get(&id).ok_or_else(missing)?;
                serde_json::to_vec(&render::purchase_order(d, &rcx, inc))
            }
            Endpoint::StockAdjustments => {
                let d = self.docs.adjustments.get(&id).filter(|a| self.listed(a)).ok_or_else(missing)?;
                serde_json::to_vec(&render::adjustment(d, &rcx, inc))
            }
            Endpoint::ManufacturingOrders => {
                let d = self.docs.manufacturing_orders.get(&id).ok_or_else(missing)?;
                serde_json::to_vec(&render::manufacturing_order(d, &rcx, inc, self.newer_manufacturing))
            }
            Endpoint::StockCounts => {
                let d = self.docs.counts.get(&id).ok_or_else(missing)?;
                serde_json::to_vec(&render::stock_count(d, &rcx, inc))
            }
            Endpoint::CountSheets => {
                let (sheet, count) = self.sheet(id).ok_or_else(missing)?;
                serde_json::to_vec(&render::sheet(sheet, count, &rcx, inc))
            }
            Endpoint::StockTransfers => {
                let d = self.docs.transfers.get(&id).ok_or_else(missing)?;
                serde_json::to_vec(&render::transfer(d, &rcx, inc))
            }
            Endpoint::Products => {
                let i = *self.cat.product_index.get(&id).ok_or_else(missing)?;
                serde_json::to_vec(&render::product(&rcx, i, inc, true))
            }
            Endpoint::Locations => {
                let i = *self.cat.location_index.get(&id).ok_or_else(missing)?;
                serde_json::to_vec(&render::location(self.cat.location(i)))
            }
            Endpoint::Customers | Endpoint::Vendors => {
                let p = self.parties(endpoint).iter().find(|p| p.id == id).ok_or_else(missing)?;
                serde_json::to_vec(&render::party(endpoint, p))
            }
        };
        bytes.map_err(internal)
    }

    /// The customers or the vendors.
    fn parties(&self, endpoint: Endpoint) -> &[crate::data::Party] {
        if endpoint == Endpoint::Customers { &self.cat.customers } else { &self.cat.vendors }
    }

    /// Every entity of an endpoint rendered with every include.
    pub fn everything(&self, endpoint: Endpoint) -> Vec<Value> {
        let (rcx, _) = self.ctx();
        let inc = Includes::everything(endpoint);
        let to = |r: Result<Value, serde_json::Error>| r.unwrap_or(Value::Null);
        match endpoint {
            Endpoint::SalesOrders => self
                .docs
                .sales_orders
                .values()
                .map(|d| to(serde_json::to_value(render::sales_order(d, &rcx, &inc))))
                .collect(),
            Endpoint::PurchaseOrders => self
                .docs
                .purchase_orders
                .values()
                .map(|d| to(serde_json::to_value(render::purchase_order(d, &rcx, &inc))))
                .collect(),
            Endpoint::StockAdjustments => self
                .docs
                .adjustments
                .values()
                .filter(|a| self.listed(a))
                .map(|d| to(serde_json::to_value(render::adjustment(d, &rcx, &inc))))
                .collect(),
            Endpoint::ManufacturingOrders => self
                .docs
                .manufacturing_orders
                .values()
                .map(|d| to(serde_json::to_value(render::manufacturing_order(d, &rcx, &inc, self.newer_manufacturing))))
                .collect(),
            Endpoint::StockCounts => self
                .docs
                .counts
                .values()
                .map(|d| to(serde_json::to_value(render::stock_count(d, &rcx, &inc))))
                .collect(),
            Endpoint::CountSheets => self
                .docs
                .counts
                .values()
                .flat_map(|c| c.sheets.iter().map(move |s| (s, c.id)))
                .map(|(s, c)| to(serde_json::to_value(render::sheet(s, c, &rcx, &inc))))
                .collect(),
            Endpoint::StockTransfers => self
                .docs
                .transfers
                .values()
                .map(|d| to(serde_json::to_value(render::transfer(d, &rcx, &inc))))
                .collect(),
            Endpoint::Products => {
                let inc = Includes::parse(Endpoint::Products, ["inventoryLines"]).unwrap_or_default();
                (0..self.cat.products.len() as u32)
                    .map(|i| to(serde_json::to_value(render::product(&rcx, i, &inc, true))))
                    .collect()
            }
            Endpoint::Locations => {
                self.cat.locations.iter().map(|l| to(serde_json::to_value(render::location(l)))).collect()
            }
            Endpoint::Customers | Endpoint::Vendors => {
                self.parties(endpoint).iter().map(|p| to(serde_json::to_value(render::party(endpoint, p)))).collect()
            }
        }
    }

    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        m.insert("sales-orders".into(), self.docs.sales_orders.len());
        m.insert("purchase-orders".into(), self.docs.purchase_orders.len());
        m.insert("stock-adjustments".into(), self.docs.adjustments.values().filter(|a| self.listed(a)).count());
        m.insert("stock-transfers".into(), self.docs.transfers.len());
        m.insert("manufacturing-orders".into(), self.docs.manufacturing_orders.len());
        m.insert("stock-counts".into(), self.docs.counts.len());
        m.insert("products".into(), self.cat.products.len());
        m.insert("locations".into(), self.cat.locations.len());
        m.insert("customers".into(), self.cat.customers.len());
        m.insert("vendors".into(), self.cat.vendors.len());
        m
    }

    /// Serial strings inside `quantity.serialNumbers` of every line of the document types (the
    /// lines of manufacturing orders at every depth, both quantities of count lines; pick
    /// matchings carry a serial of their own, not a quantity).
    pub fn serial_occurrences(&self) -> usize {
        let d = &self.docs;
        let so: usize = d
            .sales_orders
            .values()
            .map(|o| {
                o.lines.iter().map(|l| l.qty.serials.len()).sum::<usize>()
                    + o.pick_lines.iter().map(|l| l.qty.serials.len()).sum::<usize>()
                    + o.pack_lines.iter().map(|l| l.qty.serials.len()).sum::<usize>()
                    + o.restock_lines.iter().map(|l| l.qty.serials.len()).sum::<usize>()
            })
            .sum();
        let po: usize = d
            .purchase_orders
            .values()
            .map(|o| {
                o.lines.iter().map(|l| l.qty.serials.len()).sum::<usize>()
                    + o.receive_lines.iter().map(|l| l.qty.serials.len()).sum::<usize>()
                    + o.unstock_lines.iter().map(|l| l.qty.serials.len()).sum::<usize>()
            })
            .sum();
        let sa: usize = d
            .adjustments
            .values()
            .filter(|a| self.listed(a))
            .map(|o| o.lines.iter().map(|l| l.qty.serials.len()).sum::<usize>())
            .sum();
        let st: usize = d.transfers.values().map(|o| o.lines.iter().map(|l| l.qty.serials.len()).sum::<usize>()).sum();
        fn tree(lines: &[MoLine]) -> usize {
            lines.iter().map(|l| l.qty.serials.len() + tree(&l.children)).sum()
        }
        let mo: usize = d
            .manufacturing_orders
            .values()
            .map(|o| {
                tree(&o.lines)
                    + o.pick_lines.iter().map(|l| l.qty.serials.len()).sum::<usize>()
                    + o.put_lines.iter().map(|l| l.qty.serials.len()).sum::<usize>()
            })
            .sum();
        let sc: usize = d
            .counts
            .values()
            .flat_map(|c| c.sheets.iter().flat_map(|s| s.lines.iter()))
            .map(|l| l.snapshot.serials.len() + l.counted.serials.len())
            .sum();
        so + po + sa + st + mo + sc
    }

    // -----------------------------------------------------------------------------------------
    // Mutations

    fn next_ts(&mut self) -> u64 {
        self.rowversion += 1;
        self.rowversion
    }

    fn moves_of(&self, endpoint: Endpoint, id: Uuid) -> Vec<Movement> {
        let mut out = Vec::new();
        match endpoint {
            Endpoint::SalesOrders => {
                if let Some(d) = self.docs.sales_orders.get(&id) {
                    inventory::so_moves(d, &mut out)
                }
            }
            Endpoint::PurchaseOrders => {
                if let Some(d) = self.docs.purchase_orders.get(&id) {
                    inventory::po_moves(d, &mut out)
                }
            }
            Endpoint::StockAdjustments => {
                if let Some(d) = self.docs.adjustments.get(&id) {
                    inventory::sa_moves(d, &mut out)
                }
            }
            Endpoint::StockTransfers => {
                if let Some(d) = self.docs.transfers.get(&id) {
                    inventory::st_moves(d, &mut out)
                }
            }
            Endpoint::ManufacturingOrders => {
                if let Some(d) = self.docs.manufacturing_orders.get(&id) {
                    inventory::mo_moves(d, &mut out)
                }
            }
            Endpoint::StockCounts => {
                if let Some(d) = self.docs.counts.get(&id) {
                    inventory::sc_moves(d, &mut out)
                }
            }
            Endpoint::Products
            | Endpoint::Locations
            | Endpoint::Customers
            | Endpoint::Vendors
            | Endpoint::CountSheets => {}
        }
        out
    }

    fn exists(&self, endpoint: Endpoint, id: Uuid) -> bool {
        match endpoint {
            Endpoint::SalesOrders => self.docs.sales_orders.contains_key(&id),
            Endpoint::PurchaseOrders => self.docs.purchase_orders.contains_key(&id),
            Endpoint::StockAdjustments => self.docs.adjustments.contains_key(&id),
            Endpoint::StockTransfers => self.docs.transfers.contains_key(&id),
            Endpoint::ManufacturingOrders => self.docs.manufacturing_orders.contains_key(&id),
            Endpoint::StockCounts => self.docs.counts.contains_key(&id),
            Endpoint::Products
            | Endpoint::Locations
            | Endpoint::Customers
            | Endpoint::Vendors
            | Endpoint::CountSheets => false,
        }
    }

    /// Runs a change to one document and corrects the inventory by the movement difference.
    fn mutate<R>(
        &mut self,
        endpoint: &str,
        doc_id: &str,
        f: impl FnOnce(&mut State, Endpoint, Uuid) -> Result<R, SimError>,
    ) -> Result<R, SimError> {
        let ep = doc_endpoint(endpoint)?;
        let id =
            Uuid::parse_str(doc_id.trim()).map_err(|_| SimError::UnknownDocument(ep.name().into(), doc_id.into()))?;
        if !self.exists(ep, id) {
            return Err(SimError::UnknownDocument(ep.name().into(), doc_id.into()));
        }
        let before = self.moves_of(ep, id);
        let r = f(self, ep, id)?;
        let after = self.moves_of(ep, id);
        self.rebalance(&before, &after);
        Ok(r)
    }

    fn rebalance(&mut self, before: &[Movement], after: &[Movement]) {
        let mut net: HashMap<InvKey, (i64, Movement)> = HashMap::new();
        for (sign, list) in [(-1, before), (1, after)] {
            for m in list {
                net.entry(m.key).or_insert((0, *m)).0 += sign * m.qty;
            }
        }
        let mut moves: Vec<Movement> =
            net.into_values().filter(|(q, _)| *q != 0).map(|(q, m)| Movement { qty: q, ..m }).collect();
        moves.sort_by_key(|m| m.key);
        let counter = &mut self.rowversion;
        let rng = &mut self.rng;
        self.inv.apply(
            &moves,
            1,
            |_| {
                *counter += 1;
                *counter
            },
            || uuid::Builder::from_random_bytes(rng.random()).into_uuid(),
        );
    }

    pub fn edit_line_serials(
        &mut self,
        endpoint: &str,
        doc_id: &str,
        collection: &str,
        line_id: &str,
        serials: Vec<String>,
    ) -> Result<(), SimError> {
        self.mutate(endpoint, doc_id, |st, ep, id| {
            let coll = Coll::parse(ep, collection)
                .ok_or_else(|| SimError::UnknownCollection(ep.name().into(), collection.into()))?;
            let lid = Uuid::parse_str(line_id.trim())
                .map_err(|_| SimError::UnknownLine(collection.into(), line_id.into()))?;
            let sids: Vec<Sid> = serials.iter().map(|s| st.cat.serials.intern(s)).collect();
            let header = st.next_ts();
            let line_ts = st.next_ts();
            let qty = st
                .line_qty_mut(ep, id, coll, lid)
                .ok_or_else(|| SimError::UnknownLine(collection.into(), line_id.into()))?;
            let qty =
                qty.ok_or_else(|| SimError::Unsupported(format!("{collection} lines carry no quantity or serials")))?;
            let negative = qty.amount < 0;
            *qty = Qty::serials(sids, negative);
            st.stamp(ep, id, coll, lid, header, line_ts);
            Ok(())
        })
    }

    /// The quantity of a line (None for ship lines), if the line exists.
    fn line_qty_mut(&mut self, ep: Endpoint, id: Uuid, coll: Coll, lid: Uuid) -> Option<Option<&mut Qty>> {
        fn find<T>(v: &mut [T], lid: Uuid, id: impl Fn(&T) -> Uuid) -> Option<&mut T> {
            v.iter_mut().find(|l| id(l) == lid)
        }
        let q = match ep {
            Endpoint::SalesOrders => {
                let d = self.docs.sales_orders.get_mut(&id)?;
                match coll {
                    Coll::Lines => Some(&mut find(&mut d.lines, lid, |l| l.id)?.qty),
                    Coll::PickLines => Some(&mut find(&mut d.pick_lines, lid, |l| l.id)?.qty),
                    Coll::PackLines => Some(&mut find(&mut d.pack_lines, lid, |l| l.id)?.qty),
                    Coll::RestockLines => Some(&mut find(&mut d.restock_lines, lid, |l| l.id)?.qty),
                    Coll::ShipLines => {
                        find(&mut d.ship_lines, lid, |l| l.id)?;
                        None
                    }
                    _ => return None,
                }
            }
            Endpoint::PurchaseOrders => {
                let d = self.docs.purchase_orders.get_mut(&id)?;
                match coll {
                    Coll::Lines => Some(&mut find(&mut d.lines, lid, |l| l.id)?.qty),
                    Coll::ReceiveLines => Some(&mut find(&mut d.receive_lines, lid, |l| l.id)?.qty),
                    Coll::UnstockLines => Some(&mut find(&mut d.unstock_lines, lid, |l| l.id)?.qty),
                    _ => return None,
                }
            }
            Endpoint::StockAdjustments => {
                let d = self.docs.adjustments.get_mut(&id)?;
                Some(&mut find(&mut d.lines, lid, |l| l.id)?.qty)
            }
            Endpoint::StockTransfers => {
                let d = self.docs.transfers.get_mut(&id)?;
                Some(&mut find(&mut d.lines, lid, |l| l.id)?.qty)
            }
            _ => return None,
        };
        Some(q)
    }

    /// Sets the header's and one line's timestamps.
    fn stamp(&mut self, ep: Endpoint, id: Uuid, coll: Coll, lid: Uuid, header: u64, line: u64) {
        fn set<T>(v: &mut [T], lid: Uuid, id: impl Fn(&T) -> Uuid, ts: impl Fn(&mut T) -> &mut u64, to: u64) {
            if let Some(l) = v.iter_mut().find(|l| id(l) == lid) {
                *ts(l) = to;
            }
        }
        match ep {
            Endpoint::SalesOrders => {
                if let Some(d) = self.docs.sales_orders.get_mut(&id) {
                    d.ts = header;
                    match coll {
                        Coll::Lines => set(&mut d.lines, lid, |l| l.id, |l| &mut l.ts, line),
                        Coll::PickLines => set(&mut d.pick_lines, lid, |l| l.id, |l| &mut l.ts, line),
                        Coll::PackLines => set(&mut d.pack_lines, lid, |l| l.id, |l| &mut l.ts, line),
                        Coll::ShipLines => set(&mut d.ship_lines, lid, |l| l.id, |l| &mut l.ts, line),
                        Coll::RestockLines => set(&mut d.restock_lines, lid, |l| l.id, |l| &mut l.ts, line),
                        _ => {}
                    }
                }
            }
            Endpoint::PurchaseOrders => {
                if let Some(d) = self.docs.purchase_orders.get_mut(&id) {
                    d.ts = header;
                    match coll {
                        Coll::Lines => set(&mut d.lines, lid, |l| l.id, |l| &mut l.ts, line),
                        Coll::ReceiveLines => set(&mut d.receive_lines, lid, |l| l.id, |l| &mut l.ts, line),
                        Coll::UnstockLines => set(&mut d.unstock_lines, lid, |l| l.id, |l| &mut l.ts, line),
                        _ => {}
                    }
                }
            }
            Endpoint::StockAdjustments => {
                if let Some(d) = self.docs.adjustments.get_mut(&id) {
                    d.ts = header;
                    set(&mut d.lines, lid, |l| l.id, |l| &mut l.ts, line);
                }
            }
            Endpoint::StockTransfers => {
                if let Some(d) = self.docs.transfers.get_mut(&id) {
                    d.ts = header;
                    set(&mut d.lines, lid, |l| l.id, |l| &mut l.ts, line);
                }
            }
            _ => {}
        }
    }

    fn header_ts_mut(&mut self, ep: Endpoint, id: Uuid) -> Option<&mut u64> {
        Some(match ep {
            Endpoint::SalesOrders => &mut self.docs.sales_orders.get_mut(&id)?.ts,
            Endpoint::PurchaseOrders => &mut self.docs.purchase_orders.get_mut(&id)?.ts,
            Endpoint::StockAdjustments => &mut self.docs.adjustments.get_mut(&id)?.ts,
            Endpoint::StockTransfers => &mut self.docs.transfers.get_mut(&id)?.ts,
            Endpoint::ManufacturingOrders => &mut self.docs.manufacturing_orders.get_mut(&id)?.ts,
            Endpoint::StockCounts => &mut self.docs.counts.get_mut(&id)?.ts,
            Endpoint::Products
            | Endpoint::Locations
            | Endpoint::Customers
            | Endpoint::Vendors
            | Endpoint::CountSheets => return None,
        })
    }

    fn touch_header(&mut self, ep: Endpoint, id: Uuid) {
        let ts = self.next_ts();
        if let Some(h) = self.header_ts_mut(ep, id) {
            *h = ts;
        }
    }

    /// Renames a product, customer or vendor (`endpoint` is its list), as a user editing it in
    /// inFlow would: its `timestamp` moves on.
    pub fn rename(&mut self, endpoint: &str, id: &str, name: &str) -> Result<(), SimError> {
        let unknown = || SimError::UnknownDocument(endpoint.to_string(), id.to_string());
        let uuid = Uuid::parse_str(id).map_err(|_| unknown())?;
        let ts = self.next_ts();
        let renamed = match endpoint {
            "products" => self.cat.products.iter_mut().find(|p| p.id == uuid).map(|p| {
                p.name = name.to_string();
                p.ts = ts;
            }),
            "customers" | "vendors" => {
                let parties = if endpoint == "customers" { &mut self.cat.customers } else { &mut self.cat.vendors };
                parties.iter_mut().find(|p| p.id == uuid).map(|p| {
                    p.name = name.to_string();
                    p.ts = ts;
                })
            }
            _ => return Err(SimError::Unsupported(format!("renaming in {endpoint}"))),
        };
        renamed.ok_or_else(unknown)
    }

    pub fn set_document_date(
        &mut self,
        endpoint: &str,
        doc_id: &str,
        date: DateTime<FixedOffset>,
    ) -> Result<(), SimError> {
        self.mutate(endpoint, doc_id, |st, ep, id| {
            match ep {
                Endpoint::SalesOrders => {
                    if let Some(d) = st.docs.sales_orders.get_mut(&id) {
                        d.order_date = date;
                    }
                }
                Endpoint::PurchaseOrders => {
                    if let Some(d) = st.docs.purchase_orders.get_mut(&id) {
                        d.order_date = date;
                    }
                }
                Endpoint::StockAdjustments => {
                    if let Some(d) = st.docs.adjustments.get_mut(&id) {
                        d.date = date;
                    }
                }
                Endpoint::StockTransfers => {
                    if let Some(d) = st.docs.transfers.get_mut(&id) {
                        d.transfer_date = date;
                    }
                }
                Endpoint::ManufacturingOrders => {
                    if let Some(d) = st.docs.manufacturing_orders.get_mut(&id) {
                        d.order_date = date;
                    }
                }
                Endpoint::StockCounts => {
                    if let Some(d) = st.docs.counts.get_mut(&id) {
                        d.started_date = Some(date);
                    }
                }
                Endpoint::Products
                | Endpoint::Locations
                | Endpoint::Customers
                | Endpoint::Vendors
                | Endpoint::CountSheets => {}
            }
            st.touch_header(ep, id);
            Ok(())
        })
    }

    pub fn set_line_location(
        &mut self,
        endpoint: &str,
        doc_id: &str,
        collection: &str,
        line_id: &str,
        location_id: &str,
        sublocation: &str,
    ) -> Result<(), SimError> {
        self.mutate(endpoint, doc_id, |st, ep, id| {
            let coll = Coll::parse(ep, collection)
                .ok_or_else(|| SimError::UnknownCollection(ep.name().into(), collection.into()))?;
            let lid = Uuid::parse_str(line_id.trim())
                .map_err(|_| SimError::UnknownLine(collection.into(), line_id.into()))?;
            let loc_uuid = parse_uuid("locationId", location_id)?;
            let loc =
                *st.cat.location_index.get(&loc_uuid).ok_or_else(|| SimError::UnknownLocation(location_id.into()))?;
            let sub = st.cat.sublocations.intern(sublocation);
            let missing = || SimError::UnknownLine(collection.into(), line_id.into());
            let no_place = || SimError::Unsupported(format!("{collection} lines have no location"));
            match (ep, coll) {
                (Endpoint::SalesOrders, Coll::PickLines | Coll::RestockLines) => {
                    let d = st.docs.sales_orders.get_mut(&id).ok_or_else(missing)?;
                    let v = if coll == Coll::PickLines { &mut d.pick_lines } else { &mut d.restock_lines };
                    let l = v.iter_mut().find(|l| l.id == lid).ok_or_else(missing)?;
                    l.location = loc;
                    l.sub = sub;
                }
                (Endpoint::PurchaseOrders, Coll::ReceiveLines | Coll::UnstockLines) => {
                    let d = st.docs.purchase_orders.get_mut(&id).ok_or_else(missing)?;
                    let v = if coll == Coll::ReceiveLines { &mut d.receive_lines } else { &mut d.unstock_lines };
                    let l = v.iter_mut().find(|l| l.id == lid).ok_or_else(missing)?;
                    l.location = loc;
                    l.sub = sub;
                }
                (Endpoint::StockAdjustments, _) => {
                    // The location is on the header: only the sublocation is per line.
                    let d = st.docs.adjustments.get_mut(&id).ok_or_else(missing)?;
                    if d.location != loc {
                        return Err(SimError::Unsupported(
                            "an adjustment line's location is the header's; change its sublocation only".into(),
                        ));
                    }
                    let l = d.lines.iter_mut().find(|l| l.id == lid).ok_or_else(missing)?;
                    l.sub = sub;
                }
                (Endpoint::StockTransfers, _) => {
                    // The location says which side's sublocation changes.
                    let d = st.docs.transfers.get_mut(&id).ok_or_else(missing)?;
                    let (from, to) = (d.from, d.to);
                    let l = d.lines.iter_mut().find(|l| l.id == lid).ok_or_else(missing)?;
                    if loc == to {
                        l.to_sub = sub;
                    } else if loc == from {
                        l.from_sub = sub;
                    } else {
                        return Err(SimError::Unsupported(
                            "a transfer line's locations are the header's from/to locations".into(),
                        ));
                    }
                }
                _ => return Err(no_place()),
            }
            let header = st.next_ts();
            let line = st.next_ts();
            st.stamp(ep, id, coll, lid, header, line);
            Ok(())
        })
    }

    pub fn set_cancelled(&mut self, endpoint: &str, doc_id: &str, cancelled: bool) -> Result<(), SimError> {
        self.mutate(endpoint, doc_id, |st, ep, id| {
            match ep {
                Endpoint::SalesOrders => {
                    if let Some(d) = st.docs.sales_orders.get_mut(&id) {
                        d.is_cancelled = cancelled;
                    }
                }
                Endpoint::PurchaseOrders => {
                    if let Some(d) = st.docs.purchase_orders.get_mut(&id) {
                        d.is_cancelled = cancelled;
                    }
                }
                Endpoint::StockAdjustments => {
                    if let Some(d) = st.docs.adjustments.get_mut(&id) {
                        d.is_cancelled = cancelled;
                    }
                }
                Endpoint::StockTransfers => {
                    if let Some(d) = st.docs.transfers.get_mut(&id) {
                        d.is_cancelled = cancelled;
                    }
                }
                Endpoint::ManufacturingOrders => {
                    if let Some(d) = st.docs.manufacturing_orders.get_mut(&id) {
                        d.is_cancelled = cancelled;
                    }
                }
                Endpoint::StockCounts => {
                    if let Some(d) = st.docs.counts.get_mut(&id) {
                        d.is_cancelled = cancelled;
                    }
                }
                Endpoint::Products
                | Endpoint::Locations
                | Endpoint::Customers
                | Endpoint::Vendors
                | Endpoint::CountSheets => {}
            }
            st.touch_header(ep, id);
            Ok(())
        })
    }

    pub fn delete(&mut self, endpoint: &str, doc_id: &str) -> Result<(), SimError> {
        self.mutate(endpoint, doc_id, |st, ep, id| {
            match ep {
                Endpoint::SalesOrders => drop(st.docs.sales_orders.remove(&id)),
                Endpoint::PurchaseOrders => drop(st.docs.purchase_orders.remove(&id)),
                Endpoint::StockAdjustments => drop(st.docs.adjustments.remove(&id)),
                Endpoint::StockTransfers => drop(st.docs.transfers.remove(&id)),
                Endpoint::ManufacturingOrders => drop(st.docs.manufacturing_orders.remove(&id)),
                Endpoint::StockCounts => drop(st.docs.counts.remove(&id)),
                Endpoint::Products
                | Endpoint::Locations
                | Endpoint::Customers
                | Endpoint::Vendors
                | Endpoint::CountSheets => {}
            }
            Ok(())
        })
    }

    // -----------------------------------------------------------------------------------------
    // Inserting a document from API-shaped JSON

    /// Adds a document given in the API's JSON shape (as `Simulator::documents` returns it).
    /// Missing ids are generated, a missing number continues the series, and every header
    /// and line gets a new timestamp (header first). Related objects (`product`, `location`)
    /// and read-only fields are ignored.
    pub fn insert_document(&mut self, endpoint: &str, doc: &Value) -> Result<String, SimError> {
        let ep = doc_endpoint(endpoint)?;
        let mut p = Parser { st: self };
        let id = match ep {
            Endpoint::SalesOrders => {
                let d = p.sales_order(doc)?;
                let id = d.id;
                p.check_new(ep, id)?;
                p.st.docs.sales_orders.insert(id, d);
                id
            }
            Endpoint::PurchaseOrders => {
                let d = p.purchase_order(doc)?;
                let id = d.id;
                p.check_new(ep, id)?;
                p.st.docs.purchase_orders.insert(id, d);
                id
            }
            Endpoint::StockAdjustments => {
                let d = p.adjustment(doc)?;
                let id = d.id;
                p.check_new(ep, id)?;
                p.st.docs.adjustments.insert(id, d);
                id
            }
            Endpoint::StockTransfers => {
                let d = p.transfer(doc)?;
                let id = d.id;
                p.check_new(ep, id)?;
                p.st.docs.transfers.insert(id, d);
                id
            }
            Endpoint::ManufacturingOrders | Endpoint::StockCounts => {
                return Err(SimError::Unsupported(format!("inserting {ep} documents")));
            }
            Endpoint::Products
            | Endpoint::Locations
            | Endpoint::Customers
            | Endpoint::Vendors
            | Endpoint::CountSheets => {
                unreachable!("doc_endpoint refuses these")
            }
        };
        let after = self.moves_of(ep, id);
        self.rebalance(&[], &after);
        Ok(id.hyphenated().to_string())
    }
}

const SO_INVENTORY: [&str; 5] = ["unconfirmed", "quote", "unfulfilled", "started", "fulfilled"];
const SO_PAYMENT: [&str; 7] = ["unconfirmed", "quote", "uninvoiced", "invoiced", "partial", "paid", "owing"];
const PO_INVENTORY: [&str; 5] = ["quote", "unapproved", "unfulfilled", "started", "fulfilled"];
const PO_PAYMENT: [&str; 6] = ["quote", "unapproved", "unpaid", "partial", "paid", "owing"];
const TRANSFER_STATUS: [&str; 3] = ["open", "inTransit", "completed"];

struct Parser<'a> {
    st: &'a mut State,
}

impl Parser<'_> {
    fn check_new(&self, ep: Endpoint, id: Uuid) -> Result<(), SimError> {
        if self.st.exists(ep, id) {
            return Err(SimError::InvalidDocument(format!("{ep} {id} already exists")));
        }
        Ok(())
    }

    fn id(&mut self, v: &Value, key: &str) -> Result<Uuid, SimError> {
        match v.get(key) {
            Some(Value::String(s)) if !s.is_empty() => parse_uuid(key, s),
            _ => Ok(uuid::Builder::from_random_bytes(self.st.rng.random()).into_uuid()),
        }
    }

    fn str<'v>(v: &'v Value, key: &str) -> &'v str {
        v.get(key).and_then(Value::as_str).unwrap_or("")
    }

    fn bool(v: &Value, key: &str) -> bool {
        v.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    fn date(v: &Value, key: &str) -> Result<Option<Dt>, SimError> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
                .map(Some)
                .map_err(|_| SimError::InvalidDocument(format!("{key} '{s}' is not an RFC 3339 date"))),
            Some(other) => Err(SimError::InvalidDocument(format!("{key} {other} is not a date"))),
        }
    }

    fn required_date(v: &Value, key: &str) -> Result<Dt, SimError> {
        Self::date(v, key)?.ok_or_else(|| SimError::InvalidDocument(format!("{key} is required")))
    }

    fn status(v: &Value, key: &str, allowed: &[&'static str], default: &'static str) -> Result<&'static str, SimError> {
        match v.get(key).and_then(Value::as_str) {
            None => Ok(default),
            Some(s) => allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(s))
                .copied()
                .ok_or_else(|| SimError::InvalidDocument(format!("{key} '{s}' is not one of {allowed:?}"))),
        }
    }

    fn product(&self, v: &Value) -> Result<u32, SimError> {
        let s = Self::str(v, "productId");
        let id = parse_uuid("productId", s)?;
        self.st.cat.product_index.get(&id).copied().ok_or_else(|| SimError::UnknownProduct(s.to_string()))
    }

    fn location(&self, v: &Value, key: &str) -> Result<u16, SimError> {
        let s = Self::str(v, key);
        let id = parse_uuid(key, s)?;
        self.st.cat.location_index.get(&id).copied().ok_or_else(|| SimError::UnknownLocation(s.to_string()))
    }

    fn sub(&mut self, v: &Value, key: &str) -> Sub {
        let s = Self::str(v, key).to_string();
        self.st.cat.sublocations.intern(&s)
    }

    fn money(v: &Value, key: &str) -> Option<i64> {
        let d: rust_decimal::Decimal = match v.get(key)? {
            Value::String(s) => s.parse().ok()?,
            Value::Number(n) => n.to_string().parse().ok()?,
            _ => return None,
        };
        d.checked_mul(rust_decimal::Decimal::from(MONEY_ONE))?.trunc().try_into().ok()
    }

    fn qty(&mut self, line: &Value) -> Qty {
        let q = line.get("quantity").cloned().unwrap_or(Value::Null);
        let serials: Vec<Sid> = q
            .get("serialNumbers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(|s| self.st.cat.serials.intern(s)).collect())
            .unwrap_or_default();
        let amount = Self::money(&q, "standardQuantity").map(|m| m / 10);
        match amount {
            Some(a) if serials.is_empty() => Qty { amount: a, serials },
            Some(a) => Qty::serials(serials, a < 0),
            None => Qty::serials(serials, false),
        }
    }

    fn lines(v: &Value, key: &str) -> Vec<Value> {
        v.get(key).and_then(Value::as_array).cloned().unwrap_or_default()
    }

    fn ts(&mut self) -> u64 {
        self.st.next_ts()
    }

    fn order_line(&mut self, l: &Value, key: &str) -> Result<OrderLine, SimError> {
        let product = self.product(l)?;
        Ok(OrderLine {
            id: self.id(l, key)?,
            product,
            qty: self.qty(l),
            unit_price: Self::money(l, "unitPrice").unwrap_or(self.st.cat.product(product).price),
            return_date: Self::date(l, "returnDate")?,
            is_discarded: Self::bool(l, "isDiscarded"),
            ts: self.ts(),
        })
    }

    fn move_line(&mut self, l: &Value, key: &str, date_key: &str, default_loc: u16) -> Result<MoveLine, SimError> {
        let location = if l.get("locationId").and_then(Value::as_str).is_some() {
            self.location(l, "locationId")?
        } else {
            default_loc
        };
        Ok(MoveLine {
            id: self.id(l, key)?,
            product: self.product(l)?,
            qty: self.qty(l),
            location,
            sub: self.sub(l, "sublocation"),
            date: Self::required_date(l, date_key)?,
            ts: self.ts(),
        })
    }

    fn party(list: &[Party], v: &Value, key: &str) -> Result<u32, SimError> {
        match v.get(key).and_then(Value::as_str) {
            None | Some("") => Ok(0),
            Some(s) => {
                let id = parse_uuid(key, s)?;
                list.iter()
                    .position(|p| p.id == id)
                    .map(|i| i as u32)
                    .ok_or_else(|| SimError::InvalidDocument(format!("unknown {key} {s}")))
            }
        }
    }

    fn header_location(&self, v: &Value, key: &str) -> Result<u16, SimError> {
        if v.get(key).and_then(Value::as_str).is_some() { self.location(v, key) } else { Ok(0) }
    }

    fn number(&self, v: &Value, key: &str, prefix: &str, count: usize) -> String {
        match v.get(key).and_then(Value::as_str) {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => format!("{prefix}-{:06}", count + 1),
        }
    }

    fn team(&self) -> Uuid {
        self.st.cat.team[0]
    }

    fn sales_order(&mut self, v: &Value) -> Result<SalesOrder, SimError> {
        let id = self.id(v, "salesOrderId")?;
        let location = self.header_location(v, "locationId")?;
        let ts = self.ts();
        let mut so = SalesOrder {
            id,
            number: self.number(v, "orderNumber", "SO", self.st.docs.sales_orders.len()),
            customer: Self::party(&self.st.cat.customers, v, "customerId")?,
            location,
            order_date: Self::required_date(v, "orderDate")?,
            invoiced_date: Self::date(v, "invoicedDate")?,
            requested_ship_date: Self::date(v, "requestedShipDate")?,
            inventory_status: Self::status(v, "inventoryStatus", &SO_INVENTORY, "unfulfilled")?,
            payment_status: Self::status(v, "paymentStatus", &SO_PAYMENT, "uninvoiced")?,
            is_cancelled: Self::bool(v, "isCancelled"),
            is_completed: Self::bool(v, "isCompleted"),
            is_quote: Self::bool(v, "isQuote"),
            is_invoiced: Self::bool(v, "isInvoiced"),
            same_billing: Self::bool(v, "sameBillingAndShipping"),
            source: "API",
            po_number: Self::str(v, "poNumber").to_string(),
            tax_rate: Self::money(v, "tax1Rate").unwrap_or(0),
            assigned_to: self.team(),
            last_modified_by: self.team(),
            lines: Vec::new(),
            pick_lines: Vec::new(),
            pack_lines: Vec::new(),
            ship_lines: Vec::new(),
            restock_lines: Vec::new(),
            ts,
        };
        for l in Self::lines(v, "lines") {
            so.lines.push(self.order_line(&l, "salesOrderLineId")?);
        }
        for l in Self::lines(v, "pickLines") {
            so.pick_lines.push(self.move_line(&l, "salesOrderPickLineId", "pickDate", location)?);
        }
        for l in Self::lines(v, "packLines") {
            let product = self.product(&l)?;
            so.pack_lines.push(PackLine {
                id: self.id(&l, "salesOrderPackLineId")?,
                product,
                qty: self.qty(&l),
                container: Self::str(&l, "containerNumber").to_string(),
                ts: self.ts(),
            });
        }
        for l in Self::lines(v, "shipLines") {
            so.ship_lines.push(ShipLine {
                id: self.id(&l, "salesOrderShipLineId")?,
                containers: l
                    .get("containers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
                shipped_date: Self::required_date(&l, "shippedDate")?,
                carrier: "",
                tracking: Self::str(&l, "trackingNumber").to_string(),
                ts: self.ts(),
            });
        }
        for l in Self::lines(v, "restockLines") {
            so.restock_lines.push(self.move_line(&l, "salesOrderRestockLineId", "restockDate", location)?);
        }
        Ok(so)
    }

    fn purchase_order(&mut self, v: &Value) -> Result<PurchaseOrder, SimError> {
        let id = self.id(v, "purchaseOrderId")?;
        let location = self.header_location(v, "locationId")?;
        let ts = self.ts();
        let mut po = PurchaseOrder {
            id,
            number: self.number(v, "orderNumber", "PO", self.st.docs.purchase_orders.len()),
            vendor: Self::party(&self.st.cat.vendors, v, "vendorId")?,
            location,
            order_date: Self::required_date(v, "orderDate")?,
            inventory_status: Self::status(v, "inventoryStatus", &PO_INVENTORY, "unfulfilled")?,
            payment_status: Self::status(v, "paymentStatus", &PO_PAYMENT, "unpaid")?,
            is_cancelled: Self::bool(v, "isCancelled"),
            is_completed: Self::bool(v, "isCompleted"),
            is_quote: Self::bool(v, "isQuote"),
            vendor_order_number: Self::str(v, "vendorOrderNumber").to_string(),
            tax_rate: Self::money(v, "tax1Rate").unwrap_or(0),
            assigned_to: self.team(),
            last_modified_by: self.team(),
            lines: Vec::new(),
            receive_lines: Vec::new(),
            unstock_lines: Vec::new(),
            ts,
        };
        for l in Self::lines(v, "lines") {
            po.lines.push(self.order_line(&l, "purchaseOrderLineId")?);
        }
        for l in Self::lines(v, "receiveLines") {
            po.receive_lines.push(self.move_line(&l, "purchaseOrderReceiveLineId", "receiveDate", location)?);
        }
        for l in Self::lines(v, "unstockLines") {
            po.unstock_lines.push(self.move_line(&l, "purchaseOrderUnstockLineId", "unstockDate", location)?);
        }
        Ok(po)
    }

    fn adjustment(&mut self, v: &Value) -> Result<StockAdjustment, SimError> {
        let id = self.id(v, "stockAdjustmentId")?;
        let ts = self.ts();
        let mut sa = StockAdjustment {
            id,
            number: self.number(v, "adjustmentNumber", "SA", self.st.docs.adjustments.len()),
            location: self.header_location(v, "locationId")?,
            reason: match v.get("adjustmentReasonId").and_then(Value::as_str) {
                Some(s) if !s.is_empty() => parse_uuid("adjustmentReasonId", s)?,
                _ => self.st.cat.adjustment_reasons[0],
            },
            date: Self::required_date(v, "date")?,
            is_cancelled: Self::bool(v, "isCancelled"),
            remarks: Self::str(v, "remarks").to_string(),
            last_modified_by: self.team(),
            lines: Vec::new(),
            ts,
            from_count: None,
        };
        for l in Self::lines(v, "lines") {
            let product = self.product(&l)?;
            sa.lines.push(AdjLine {
                id: self.id(&l, "stockAdjustmentLineId")?,
                product,
                qty: self.qty(&l),
                sub: self.sub(&l, "sublocation"),
                ts: self.ts(),
            });
        }
        Ok(sa)
    }

    fn transfer(&mut self, v: &Value) -> Result<StockTransfer, SimError> {
        let id = self.id(v, "stockTransferId")?;
        let ts = self.ts();
        let mut st = StockTransfer {
            id,
            number: self.number(v, "transferNumber", "ST", self.st.docs.transfers.len()),
            from: self.location(v, "fromLocationId")?,
            to: self.location(v, "toLocationId")?,
            status: Self::status(v, "status", &TRANSFER_STATUS, "open")?,
            is_cancelled: Self::bool(v, "isCancelled"),
            transfer_date: Self::required_date(v, "transferDate")?,
            sent_date: Self::date(v, "sentDate")?,
            received_date: Self::date(v, "receivedDate")?,
            remarks: Self::str(v, "remarks").to_string(),
            last_modified_by: self.team(),
            lines: Vec::new(),
            ts,
        };
        for l in Self::lines(v, "lines") {
            let product = self.product(&l)?;
            st.lines.push(XferLine {
                id: self.id(&l, "stockTransferLineId")?,
                product,
                qty: self.qty(&l),
                from_sub: self.sub(&l, "fromSublocation"),
                to_sub: self.sub(&l, "toSublocation"),
                ts: self.ts(),
            });
        }
        Ok(st)
    }
}
