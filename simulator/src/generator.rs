//! The deterministic company generator (ChaCha8 seeded by `seed`, sized by [`Scale`]).
//!
//! It simulates the business forward in time from 2024-01 to 2026-10: purchase orders receive
//! new serials, transfers move them between locations, sales orders pick, pack and ship them,
//! customers return some (restocked into `RETURNS` or discarded), vendors take some back,
//! adjustments add found stock or remove damaged units, manufacturing orders consume serialized
//! components and put away the units they build (some in progress, some cancelled), and stock
//! counts miss serials and find new ones. Stock is taken at decision time and
//! only becomes available again through a time-ordered queue (receipt, transfer arrival,
//! restock, cancellation), so every serial's documents are in a plausible time order.
//!
//! Timestamps: every write (a header save, a line added) gets a provisional key (date, write
//! order) during generation; at the end all keys are sorted and replaced by one rising counter,
//! so `timestamp`s follow the company's history like SQL Server's `rowversion`, and a line
//! written in the same save as its header (or later) has a higher value than the header.
//!
//! Known simplifications: each location has one fixed UTC offset (no daylight saving); header
//! money is derived from the lines; customers and vendors exist only as ids and names on the
//! orders; only serials planted as data faults break the rules (`faults: false` plants none).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use chrono::{DateTime, FixedOffset, NaiveDate};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use super::Scale;
use super::data::*;
use super::inventory::{InvKey, Inventory, Movement, all_moves};
use super::scenario::{BuildChain, DocRef, OnHand, PlantedAnomaly, Scenario, SerialStory, TwoProducts};

/// 2024-01-01T00:00:00Z.
pub(crate) const START: i64 = 1_704_067_200;
/// 2026-10-31T23:59:59Z.
pub(crate) const END: i64 = 1_793_404_800 + 86_399;
/// Base of the provisional write keys.
const EPOCH_2020: i64 = 1_577_836_800;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// Documents are dated in business hours of their location (`biz`), which can move the instant
/// the business loop draws up to a day earlier (a transfer's in its source's hours, a
/// manufacturing order's in its own): stock that arrived at least a day before that instant is
/// all a document may take without being dated before the stock's arrival (a history `audit
/// anomalies` and `audit reconcile` would rightly flag).
const RELEASE_LAG: i64 = DAY;
/// Transfers left in transit longer than this are stuck (`audit anomalies --transit-days`):
/// the random business leaves only the last two weeks' transfers on the way.
const TRANSIT_DAYS: i64 = 14;

/// How many documents of each kind a scale asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub so: usize,
    pub po: usize,
    pub sa: usize,
    pub st: usize,
    /// Manufacturing orders and stock counts.
    pub mo: usize,
    pub sc: usize,
    pub products: usize,
    pub customers: usize,
    pub vendors: usize,
}

/// Sales orders of the large scale: enough for well over a million serial occurrences.
pub(crate) const LARGE_ORDERS: usize = 120_000;

impl Plan {
    pub fn for_scale(scale: Scale) -> Plan {
        match scale {
            Scale::Small => {
                Plan { so: 160, po: 54, sa: 20, st: 22, mo: 16, sc: 6, products: 24, customers: 40, vendors: 8 }
            }
            Scale::Medium => Plan {
                so: 6000,
                po: 2000,
                sa: 750,
                st: 750,
                mo: 250,
                sc: 60,
                products: 80,
                customers: 300,
                vendors: 20,
            },
            Scale::Large => Plan::orders(LARGE_ORDERS),
            Scale::Orders(n) => Plan::orders(n),
        }
    }

    fn orders(n: usize) -> Plan {
        Plan {
            so: n,
            po: (n / 3).max(3),
            sa: (n / 8).max(1),
            st: (n / 8).max(1),
            mo: (n / 40).max(2),
            sc: (n / 200).max(1),
            products: (24 + n / 100).min(200),
            customers: (n / 4).clamp(10, 2000),
            vendors: (n / 200).clamp(5, 40),
        }
    }
}

/// A generated company, ready to serve.
pub(crate) struct Generated {
    pub cat: Catalog,
    pub docs: Docs,
    pub inv: Inventory,
    pub rowversion: u64,
    pub scenario: Scenario,
    pub rng: ChaCha8Rng,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Arrival {
    Serial { product: u32, loc: u16, sub: Sub, sid: Sid },
    Bulk { product: u32, loc: u16, sub: Sub, units: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    So,
    Po,
    Sa,
    St,
    Mo,
    Sc,
}

/// A planted document (by id: the vectors are re-sorted before the end).
#[derive(Clone, Copy, Debug)]
enum GenRef {
    So(Uuid),
    Po(Uuid),
    Sa(Uuid),
    St(Uuid),
    Mo(Uuid),
    Sc(Uuid),
}

struct PlantedStory {
    serial: Sid,
    product: u32,
    docs: Vec<GenRef>,
    on_hand: Option<(u16, Sub)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Unfulfilled,
    Picked,
    Packed,
    Shipped,
}

struct Gen {
    rng: ChaCha8Rng,
    cat: Catalog,
    sos: Vec<SalesOrder>,
    pos: Vec<PurchaseOrder>,
    sas: Vec<StockAdjustment>,
    sts: Vec<StockTransfer>,
    mos: Vec<ManufacturingOrder>,
    scs: Vec<StockCount>,
    /// Random manufacturing orders and counts made so far: the first few take each shape in
    /// turn, so that even a small company has every kind.
    random_mos: usize,
    random_counts: usize,
    seq: u64,
    pools: HashMap<(u32, u16), Vec<(Sid, Sub)>>,
    bulk: HashMap<(u32, u16), Vec<(Sub, i64)>>,
    queue: BinaryHeap<Reverse<(i64, u64, Arrival)>>,
    serial_format: Vec<u8>,
    serial_counters: [u64; 4],
    serialized: Vec<u32>,
    nonserial: Vec<u32>,
    returns_sub: Sub,
    receiving_sub: Sub,
    /// Stock changes inFlow knows from sources `audit` does not read (opening balances entered
    /// on a product, stock counts, stockroom scans): they move `inventoryLines` without any
    /// sales order, purchase order, adjustment or transfer. Planted for reconciliation.
    off_document: Vec<Movement>,
}

pub(crate) fn generate(seed: u64, scale: Scale, faults: bool) -> Generated {
    let plan = Plan::for_scale(scale);
    let mut g = Gen::new(seed, &plan);
    let mut planted = g.plant(faults, &plan);
    planted.extend(g.plant_builds_and_counts());
    let opening = (plan.po / 12).max(3);
    g.opening_stock(opening);
    g.run(&plan, plan.po.saturating_sub(opening));
    if faults {
        // After the random business, which then stays what it is without faults.
        planted.extend(g.plant_anomalies());
    }
    g.finish(planted)
}

// ---------------------------------------------------------------------------------------------
// Catalog

const LOCATIONS: [(&str, i32, &str, &str, &str, &str); 6] = [
    ("Main Warehouse", -5, "1200 Harbor Blvd", "Newark", "NJ", "United States"),
    ("West Coast DC", -8, "88 Logistics Way", "Ontario", "CA", "United States"),
    ("Chicago Store", -6, "410 N Wells St", "Chicago", "IL", "United States"),
    ("London Showroom", 0, "12 Great Sutton St", "London", "", "United Kingdom"),
    ("Paris Depot", 1, "7 Rue de la Gare", "Paris", "", "France"),
    ("Toronto Annex", -5, "55 Front St W", "Toronto", "ON", "Canada"),
];

const SERIAL_PRODUCTS: [(&str, &str); 16] = [
    ("Laptop", "LAP"),
    ("Tablet", "TAB"),
    ("Smartphone", "PHN"),
    ("Monitor", "MON"),
    ("Docking Station", "DCK"),
    ("Wi-Fi Router", "RTR"),
    ("Barcode Scanner", "SCN"),
    ("Label Printer", "LBL"),
    ("POS Terminal", "POS"),
    ("Projector", "PRJ"),
    ("Mirrorless Camera", "CAM"),
    ("Drone", "DRN"),
    ("Cordless Drill", "DRL"),
    ("E-bike Battery", "BAT"),
    ("Smartwatch", "WCH"),
    ("Headset", "HST"),
];

const BULK_PRODUCTS: [(&str, &str); 8] = [
    ("USB-C Cable", "CBL"),
    ("HDMI Cable", "HDM"),
    ("Mouse Pad", "MPD"),
    ("Screen Protector", "SPR"),
    ("Label Roll", "LRL"),
    ("Cleaning Kit", "CLN"),
    ("Power Adapter", "PWR"),
    ("Carry Case", "CSE"),
];

const MODELS: [&str; 8] = ["X1", "Pro 14", "S2", "Max", "Lite", "G5", "Plus", "Mini"];
const COMPANY_A: [&str; 12] = [
    "Acme",
    "Northwind",
    "Blue Harbor",
    "Summit",
    "Redwood",
    "Keystone",
    "Lakeside",
    "Pioneer",
    "Silverline",
    "Brightway",
    "Oakmont",
    "Riverbend",
];
const COMPANY_B: [&str; 8] =
    ["Retail", "Supply", "Electronics", "Trading", "Systems", "Outfitters", "Partners", "Labs"];
const FIRST: [&str; 10] = ["Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Jamie", "Riley", "Avery", "Quinn"];
const LAST: [&str; 10] =
    ["Nguyen", "Smith", "Garcia", "Martin", "Dubois", "Brown", "Kowalski", "Rossi", "Patel", "Lee"];
const CARRIERS: [&str; 4] = ["UPS", "FedEx", "DHL", ""];

impl Gen {
    fn new(seed: u64, plan: &Plan) -> Gen {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut uuid = || uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        let mut sublocations = Interner::default();
        sublocations.intern("");
        let returns_sub = sublocations.intern("RETURNS");
        let receiving_sub = sublocations.intern("RECEIVING");
        let team: Vec<Uuid> = (0..5).map(|_| uuid()).collect();
        let currency_id = uuid();
        let pricing_scheme_id = uuid();
        let taxing_scheme_id = uuid();
        let tax_code_id = uuid();
        let adjustment_reasons: Vec<Uuid> = (0..4).map(|_| uuid()).collect();
        let count_reason = uuid();
        let categories: Vec<Uuid> = (0..6).map(|_| uuid()).collect();

        let n_locations = rng.random_range(4..=6);
        let mut locations = Vec::new();
        for (i, (name, hours, street, city, state, country)) in LOCATIONS.iter().take(n_locations).enumerate() {
            let rows = ["A", "B", "C", "D"];
            let n_bins = rng.random_range(6..=14);
            let mut bins = Vec::new();
            for b in 0..n_bins {
                let bin = format!("{}-{:02}-{}", rows[b % rows.len()], 1 + b / rows.len(), rng.random_range(1..=4));
                bins.push(sublocations.intern(&bin));
            }
            locations.push(Location {
                id: uuid::Builder::from_random_bytes(rng.random()).into_uuid(),
                name: name.to_string(),
                offset: FixedOffset::east_opt(hours * 3600)
                    .unwrap_or(FixedOffset::east_opt(0).expect("zero offset is valid")),
                address: Address {
                    address1: street.to_string(),
                    city: city.to_string(),
                    state: state.to_string(),
                    country: country.to_string(),
                    postal_code: format!("{:05}", 10_000 + i * 7919 % 89_999),
                    address_type: Some("commercial"),
                },
                is_default: i == 0,
                bins,
                ts: 0,
            });
        }

        let mut products = Vec::new();
        let mut serial_format = Vec::new();
        let mut serialized = Vec::new();
        let mut nonserial = Vec::new();
        let n_serial = (plan.products * 2).div_ceil(3);
        for i in 0..plan.products {
            let track = i < n_serial;
            let (base, abbr) = if track {
                SERIAL_PRODUCTS[i % SERIAL_PRODUCTS.len()]
            } else {
                BULK_PRODUCTS[(i - n_serial) % BULK_PRODUCTS.len()]
            };
            let model = MODELS[(i / 8 + i) % MODELS.len()];
            let name = format!("{base} {model}");
            let price = if track {
                rng.random_range(150..3000) * MONEY_ONE + rng.random_range(0..100) * 1000
            } else {
                rng.random_range(5..80) * MONEY_ONE + rng.random_range(0..100) * 1000
            };
            let idx = products.len() as u32;
            if track {
                serialized.push(idx);
                // The first serialized product keeps the `SN-000123` format the tests lean on.
                serial_format.push(if i == 0 { 0 } else { (i % 4) as u8 });
            } else {
                nonserial.push(idx);
                serial_format.push(0);
            }
            products.push(Product {
                id: uuid::Builder::from_random_bytes(rng.random()).into_uuid(),
                name: format!("{name} #{}", i + 1),
                sku: format!("{abbr}-{:04}", i + 1),
                description: format!("{name} ({})", if track { "serialized" } else { "bulk" }),
                barcode: format!("{:012}", rng.random_range(100_000_000_000u64..999_999_999_999)),
                category_id: categories[i % categories.len()],
                track_serials: track,
                item_type: "stockedProduct",
                price,
                cost: price * 6 / 10,
                last_vendor: Uuid::nil(),
                last_modified: DateTime::from_timestamp(START, 0).unwrap_or_default().fixed_offset(),
                custom1: if track { "Serialized" } else { "" },
                ts: 0,
            });
        }

        let party = |rng: &mut ChaCha8Rng, i: usize, kind: &str| {
            let a = COMPANY_A[rng.random_range(0..COMPANY_A.len())];
            let b = COMPANY_B[rng.random_range(0..COMPANY_B.len())];
            let first = FIRST[rng.random_range(0..FIRST.len())];
            let last = LAST[rng.random_range(0..LAST.len())];
            let (street, city, state, country) = match rng.random_range(0..4) {
                0 => ("100 Main St", "Springfield", "IL", "United States"),
                1 => ("22 King St", "Toronto", "ON", "Canada"),
                2 => ("5 Rue Lafayette", "Lyon", "", "France"),
                _ => ("9 High St", "Leeds", "", "United Kingdom"),
            };
            let name = format!("{a} {b} {kind}{i}");
            Party {
                id: uuid::Builder::from_random_bytes(rng.random()).into_uuid(),
                contact: format!("{first} {last}"),
                email: format!(
                    "{}.{}@{}-{}.example",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    a.to_lowercase().replace(' ', ""),
                    i
                ),
                phone: format!("+1-555-{:04}", rng.random_range(0..10_000)),
                // Below every document's: the company's parties came first.
                ts: 0x100 + i as u64,
                name,
                address: Address {
                    address1: street.to_string(),
                    city: city.to_string(),
                    state: state.to_string(),
                    country: country.to_string(),
                    postal_code: format!("{:05}", rng.random_range(10_000..99_999)),
                    address_type: if rng.random_bool(0.5) { Some("commercial") } else { None },
                },
            }
        };
        let customers: Vec<Party> = (0..plan.customers).map(|i| party(&mut rng, i + 1, "C")).collect();
        let vendors: Vec<Party> = (0..plan.vendors).map(|i| party(&mut rng, i + 1, "V")).collect();
        for p in &mut products {
            p.last_vendor = vendors[rng.random_range(0..vendors.len())].id;
        }

        let mut cat = Catalog {
            locations,
            products,
            customers,
            vendors,
            team,
            currency_id,
            pricing_scheme_id,
            taxing_scheme_id,
            tax_code_id,
            adjustment_reasons,
            count_reason,
            serials: Interner::default(),
            sublocations,
            product_index: HashMap::new(),
            location_index: HashMap::new(),
        };
        cat.reindex();
        let mut g = Gen {
            rng,
            cat,
            sos: Vec::new(),
            pos: Vec::new(),
            sas: Vec::new(),
            sts: Vec::new(),
            mos: Vec::new(),
            scs: Vec::new(),
            random_mos: 0,
            random_counts: 0,
            seq: 0,
            pools: HashMap::new(),
            bulk: HashMap::new(),
            queue: BinaryHeap::new(),
            serial_format,
            serial_counters: [100, 1, 4_000_000, 0x1000],
            serialized,
            nonserial,
            returns_sub,
            receiving_sub,
            off_document: Vec::new(),
        };
        g.serial_counters[0] += g.rng.random_range(0..400);
        // Catalog writes happen at the start; a few products are edited later on.
        for i in 0..g.cat.locations.len() {
            g.cat.locations[i].ts = g.pv(START + i as i64);
        }
        for i in 0..g.cat.products.len() {
            let t = if g.rng.random_bool(0.3) { g.rng.random_range(START..END) } else { START + 60 + i as i64 };
            let off = g.cat.locations[0].offset;
            g.cat.products[i].last_modified = g.dt_at(t, off);
            g.cat.products[i].ts = g.pv(t);
        }
        g
    }

    // -----------------------------------------------------------------------------------------
    // Small helpers

    /// A provisional write key: date first, then write order.
    fn pv(&mut self, t: i64) -> u64 {
        self.seq += 1;
        (((t - EPOCH_2020).max(0) as u64) << 24) | (self.seq & 0xFF_FFFF)
    }

    fn uuid(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(self.rng.random()).into_uuid()
    }

    fn dt_at(&self, t: i64, off: FixedOffset) -> Dt {
        DateTime::from_timestamp(t, 0).unwrap_or_default().with_timezone(&off)
    }

    fn dt(&self, t: i64, loc: u16) -> Dt {
        self.dt_at(t, self.cat.location(loc).offset)
    }

    /// Moves an instant into 08:00–18:00 local time of `loc`, keeping order within a day.
    fn biz(&self, t: i64, loc: u16) -> i64 {
        let off = self.cat.location(loc).offset.local_minus_utc() as i64;
        let local = t + off;
        let day = local.div_euclid(DAY);
        let in_day = local.rem_euclid(DAY);
        day * DAY + 8 * HOUR + in_day * 10 / 24 - off
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    fn bin(&mut self, loc: u16) -> Sub {
        let bins = self.cat.location(loc).bins.clone();
        self.pick(&bins)
    }

    fn other_location(&mut self, not: u16) -> u16 {
        let n = self.cat.locations.len() as u16;
        (not + self.rng.random_range(1..n)) % n
    }

    fn random_location(&mut self) -> u16 {
        if self.rng.random_bool(0.35) { 0 } else { self.rng.random_range(0..self.cat.locations.len() as u16) }
    }

    fn new_serial(&mut self, product: u32, t: i64) -> Sid {
        let fmt = self.serial_format[product as usize];
        let n = self.serial_counters[fmt as usize];
        self.serial_counters[fmt as usize] += 1;
        let s = match fmt {
            0 => format!("SN-{n:06}"),
            1 => {
                let sku = &self.cat.product(product).sku;
                let year = self.dt_at(t, FixedOffset::east_opt(0).unwrap_or(self.cat.locations[0].offset));
                format!("{}{}{:06}", &sku[..3], year.format("%y"), n)
            }
            2 => format!("35{n:013}"),
            _ => {
                // A bijective mix of the counter: unique, but looks random.
                let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
                format!("{:04X}-{:04X}-{:04X}", (h >> 32) & 0xFFFF, (h >> 16) & 0xFFFF, h & 0xFFFF)
            }
        };
        self.cat.serials.intern(&s)
    }

    fn arrive(&mut self, t: i64, a: Arrival) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, a)));
    }

    fn release_until(&mut self, t: i64) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > t {
                break;
            }
            let Some(Reverse((_, _, a))) = self.queue.pop() else {
                break;
            };
            match a {
                Arrival::Serial { product, loc, sub, sid } => {
                    self.pools.entry((product, loc)).or_default().push((sid, sub))
                }
                Arrival::Bulk { product, loc, sub, units } => {
                    let v = self.bulk.entry((product, loc)).or_default();
                    match v.iter_mut().find(|(s, _)| *s == sub) {
                        Some((_, q)) => *q += units,
                        None => v.push((sub, units)),
                    }
                }
            }
        }
    }

    fn take_serials(&mut self, product: u32, loc: u16, k: usize) -> Vec<(Sid, Sub)> {
        let Some(pool) = self.pools.get_mut(&(product, loc)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while out.len() < k && !pool.is_empty() {
            let i = self.rng.random_range(0..pool.len());
            out.push(pool.swap_remove(i));
        }
        out
    }

    /// Serials in stock, chosen like `take_serials` but left in stock.
    fn peek_serials(&mut self, product: u32, loc: u16, k: usize) -> Vec<Sid> {
        let taken = self.take_serials(product, loc, k);
        let pool = self.pools.entry((product, loc)).or_default();
        pool.extend(taken.iter().copied());
        taken.into_iter().map(|(sid, _)| sid).collect()
    }

    fn available(&self, product: u32, loc: u16) -> usize {
        self.pools.get(&(product, loc)).map_or(0, Vec::len)
    }

    /// A serialized product with stock at `loc` (or anywhere, if `anywhere`).
    fn find_stock(&mut self, loc: u16, anywhere: bool) -> Option<(u32, u16)> {
        for _ in 0..12 {
            let p = self.pick(&self.serialized.clone());
            if self.available(p, loc) > 0 {
                return Some((p, loc));
            }
            if anywhere {
                let l = self.rng.random_range(0..self.cat.locations.len() as u16);
                if self.available(p, l) > 0 {
                    return Some((p, l));
                }
            }
        }
        None
    }

    fn take_bulk(&mut self, product: u32, loc: u16, units: i64) -> Option<Sub> {
        let v = self.bulk.get_mut(&(product, loc))?;
        let (sub, q) = v.iter_mut().find(|(_, q)| *q >= units)?;
        *q -= units;
        Some(*sub)
    }

    // -----------------------------------------------------------------------------------------
    // Document primitives (each write gets a provisional timestamp at its date)

    fn new_po(&mut self, t: i64, loc: u16) -> usize {
        let vendor = self.rng.random_range(0..self.cat.vendors.len()) as u32;
        let po = PurchaseOrder {
            id: self.uuid(),
            number: String::new(),
            vendor,
            location: loc,
            order_date: self.dt(t, loc),
            inventory_status: "unfulfilled",
            payment_status: "unpaid",
            is_cancelled: false,
            is_completed: false,
            is_quote: false,
            vendor_order_number: format!("V-{}", self.rng.random_range(10_000..99_999)),
            tax_rate: 0,
            assigned_to: self.pick(&self.cat.team.clone()),
            last_modified_by: self.pick(&self.cat.team.clone()),
            lines: Vec::new(),
            receive_lines: Vec::new(),
            unstock_lines: Vec::new(),
            ts: self.pv(t),
        };
        self.pos.push(po);
        self.pos.len() - 1
    }

    fn po_touch(&mut self, po: usize, t: i64) {
        let v = self.pv(t);
        let h = &mut self.pos[po].ts;
        *h = (*h).max(v);
    }

    fn po_line(&mut self, po: usize, product: u32, qty: Qty, t: i64, return_date: Option<Dt>) {
        let line = OrderLine {
            id: self.uuid(),
            product,
            qty,
            unit_price: self.cat.product(product).cost,
            return_date,
            is_discarded: false,
            ts: self.pv(t),
        };
        self.pos[po].lines.push(line);
    }

    fn po_receive(&mut self, po: usize, product: u32, qty: Qty, loc: u16, sub: Sub, t: i64) {
        self.po_touch(po, t);
        let line =
            MoveLine { id: self.uuid(), product, qty, location: loc, sub, date: self.dt(t, loc), ts: self.pv(t) };
        self.pos[po].receive_lines.push(line);
    }

    /// A vendor return: an unstock line and a negative order line with the return date.
    fn po_unstock(&mut self, po: usize, product: u32, serials: Vec<Sid>, loc: u16, sub: Sub, t: i64) {
        self.po_touch(po, t);
        let date = self.dt(t, loc);
        let line = MoveLine {
            id: self.uuid(),
            product,
            qty: Qty::serials(serials.clone(), false),
            location: loc,
            sub,
            date,
            ts: self.pv(t),
        };
        self.pos[po].unstock_lines.push(line);
        self.po_line(po, product, Qty::serials(serials, true), t, Some(date));
    }

    fn new_so(&mut self, t: i64, loc: u16) -> usize {
        let customer = self.rng.random_range(0..self.cat.customers.len()) as u32;
        let so = SalesOrder {
            id: self.uuid(),
            number: String::new(),
            customer,
            location: loc,
            order_date: self.dt(t, loc),
            invoiced_date: None,
            requested_ship_date: None,
            inventory_status: "unfulfilled",
            payment_status: "uninvoiced",
            is_cancelled: false,
            is_completed: false,
            is_quote: false,
            is_invoiced: false,
            same_billing: self.rng.random_bool(0.6),
            source: if self.rng.random_bool(0.7) { "inFlowWeb" } else { "API" },
            po_number: if self.rng.random_bool(0.3) {
                format!("CPO-{}", self.rng.random_range(1000..99_999))
            } else {
                String::new()
            },
            tax_rate: [0, 5 * MONEY_ONE, 8_875 * 100, 20 * MONEY_ONE][self.rng.random_range(0..4)],
            assigned_to: self.pick(&self.cat.team.clone()),
            last_modified_by: self.pick(&self.cat.team.clone()),
            lines: Vec::new(),
            pick_lines: Vec::new(),
            pack_lines: Vec::new(),
            ship_lines: Vec::new(),
            restock_lines: Vec::new(),
            ts: self.pv(t),
        };
        self.sos.push(so);
        self.sos.len() - 1
    }

    fn so_touch(&mut self, so: usize, t: i64) {
        let v = self.pv(t);
        let h = &mut self.sos[so].ts;
        *h = (*h).max(v);
    }

    fn so_line(&mut self, so: usize, product: u32, qty: Qty, t: i64) -> usize {
        let line = OrderLine {
            id: self.uuid(),
            product,
            qty,
            unit_price: self.cat.product(product).price,
            return_date: None,
            is_discarded: false,
            ts: self.pv(t),
        };
        self.sos[so].lines.push(line);
        self.sos[so].lines.len() - 1
    }

    fn so_pick(&mut self, so: usize, product: u32, qty: Qty, loc: u16, sub: Sub, t: i64) {
        let line =
            MoveLine { id: self.uuid(), product, qty, location: loc, sub, date: self.dt(t, loc), ts: self.pv(t) };
        self.sos[so].pick_lines.push(line);
    }

    fn so_pack(&mut self, so: usize, product: u32, qty: Qty, container: &str, t: i64) {
        let line = PackLine { id: self.uuid(), product, qty, container: container.to_string(), ts: self.pv(t) };
        self.sos[so].pack_lines.push(line);
    }

    fn so_ship(&mut self, so: usize, containers: Vec<String>, t: i64) {
        let loc = self.sos[so].location;
        let carrier = self.pick(&CARRIERS);
        let tracking = if carrier.is_empty() {
            String::new()
        } else {
            format!("1Z{:016}", self.rng.random_range(0..10_000_000_000_000_000u64))
        };
        let line =
            ShipLine { id: self.uuid(), containers, shipped_date: self.dt(t, loc), carrier, tracking, ts: self.pv(t) };
        self.sos[so].ship_lines.push(line);
    }

    /// A customer return: a negative line with the return date, then (unless discarded) a
    /// restock line one day later at most.
    fn so_return(
        &mut self,
        so: usize,
        product: u32,
        serials: Vec<Sid>,
        t: i64,
        restock: Option<(u16, Sub)>,
    ) -> Option<i64> {
        let loc = self.sos[so].location;
        self.so_touch(so, t);
        let date = self.dt(t, loc);
        let i = self.so_line(so, product, Qty::serials(serials.clone(), true), t);
        self.sos[so].lines[i].return_date = Some(date);
        self.sos[so].lines[i].is_discarded = restock.is_none();
        let (rloc, rsub) = restock?;
        let tr = t + self.rng.random_range(HOUR..DAY);
        self.so_touch(so, tr);
        let line = MoveLine {
            id: self.uuid(),
            product,
            qty: Qty::serials(serials, false),
            location: rloc,
            sub: rsub,
            date: self.dt(tr, rloc),
            ts: self.pv(tr),
        };
        self.sos[so].restock_lines.push(line);
        Some(tr)
    }

    /// A sale of specific serials, as far as `stage`, with one pick line per sublocation and
    /// one container. Returns the ship time when shipped.
    #[allow(clippy::too_many_arguments)]
    fn sell(
        &mut self,
        t: i64,
        loc: u16,
        product: u32,
        serials: &[(Sid, Sub)],
        pick_loc: u16,
        stage: Stage,
    ) -> (usize, i64) {
        let so = self.new_so(t, loc);
        let ids: Vec<Sid> = serials.iter().map(|(s, _)| *s).collect();
        self.so_line(so, product, Qty::serials(ids.clone(), false), t);
        let tp = t + 2 * HOUR;
        let tk = tp + 2 * HOUR;
        let ts = tk + 20 * HOUR;
        if stage != Stage::Unfulfilled {
            self.so_touch(so, tp);
            let mut subs: Vec<Sub> = serials.iter().map(|(_, s)| *s).collect();
            subs.dedup();
            for sub in subs {
                let here: Vec<Sid> = serials.iter().filter(|(_, s)| *s == sub).map(|(x, _)| *x).collect();
                self.so_pick(so, product, Qty::serials(here, false), pick_loc, sub, tp);
            }
            self.sos[so].inventory_status = "started";
        }
        if matches!(stage, Stage::Packed | Stage::Shipped) {
            self.so_pack(so, product, Qty::serials(ids, false), "1", tk);
        }
        if stage == Stage::Shipped {
            self.so_touch(so, ts);
            self.so_ship(so, vec!["1".to_string()], ts);
            self.finish_shipped(so, ts);
        }
        (so, ts)
    }

    fn finish_shipped(&mut self, so: usize, t: i64) {
        let loc = self.sos[so].location;
        let date = self.dt(t, loc);
        let s = &mut self.sos[so];
        s.inventory_status = "fulfilled";
        s.is_completed = true;
        let roll = self.rng.random_range(0..100);
        let s = &mut self.sos[so];
        s.payment_status = match roll {
            0..80 => "paid",
            80..95 => "invoiced",
            _ => "partial",
        };
        s.is_invoiced = true;
        s.invoiced_date = Some(date);
    }

    /// A purchase order that receives `serials` (new ones) at `loc`/`sub` at `tr`.
    fn buy(&mut self, t: i64, loc: u16, product: u32, serials: Vec<Sid>, sub: Sub, tr: i64) -> usize {
        let po = self.new_po(t, loc);
        self.po_line(po, product, Qty::bulk(serials.len() as i64), t, None);
        self.po_receive(po, product, Qty::serials(serials, false), loc, sub, tr);
        let p = &mut self.pos[po];
        p.inventory_status = "fulfilled";
        p.is_completed = true;
        p.payment_status = "paid";
        po
    }

    fn new_transfer(&mut self, t: i64, from: u16, to: u16) -> usize {
        let st = StockTransfer {
            id: self.uuid(),
            number: String::new(),
            from,
            to,
            status: "open",
            is_cancelled: false,
            transfer_date: self.dt(t, from),
            sent_date: None,
            received_date: None,
            remarks: String::new(),
            last_modified_by: self.pick(&self.cat.team.clone()),
            lines: Vec::new(),
            ts: self.pv(t),
        };
        self.sts.push(st);
        self.sts.len() - 1
    }

    fn st_line(&mut self, st: usize, product: u32, qty: Qty, from_sub: Sub, to_sub: Sub, t: i64) {
        let line = XferLine { id: self.uuid(), product, qty, from_sub, to_sub, ts: self.pv(t) };
        self.sts[st].lines.push(line);
    }

    fn st_status(&mut self, st: usize, status: &'static str, sent: Option<i64>, recv: Option<i64>) {
        let (from, to) = (self.sts[st].from, self.sts[st].to);
        if let Some(ts) = sent {
            let v = self.pv(ts);
            self.sts[st].ts = self.sts[st].ts.max(v);
            self.sts[st].sent_date = Some(self.dt(ts, from));
        }
        if let Some(tr) = recv {
            let v = self.pv(tr);
            self.sts[st].ts = self.sts[st].ts.max(v);
            self.sts[st].received_date = Some(self.dt(tr, to));
        }
        self.sts[st].status = status;
    }

    fn new_adjustment(&mut self, t: i64, loc: u16, remarks: &str) -> usize {
        let sa = StockAdjustment {
            id: self.uuid(),
            number: String::new(),
            location: loc,
            reason: self.pick(&self.cat.adjustment_reasons.clone()),
            date: self.dt(t, loc),
            is_cancelled: false,
            remarks: remarks.to_string(),
            last_modified_by: self.pick(&self.cat.team.clone()),
            lines: Vec::new(),
            ts: self.pv(t),
            from_count: None,
        };
        self.sas.push(sa);
        self.sas.len() - 1
    }

    fn sa_line(&mut self, sa: usize, product: u32, qty: Qty, sub: Sub, t: i64) {
        let line = AdjLine { id: self.uuid(), product, qty, sub, ts: self.pv(t) };
        self.sas[sa].lines.push(line);
    }

    // -----------------------------------------------------------------------------------------
    // Planted stories

    fn at(y: i32, m: u32, d: u32, h: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, m, d).and_then(|d| d.and_hms_opt(h, 0, 0)).map_or(START, |t| t.and_utc().timestamp())
    }

    fn plant(&mut self, faults: bool, plan: &Plan) -> Vec<(&'static str, PlantedStory)> {
        let p0 = self.serialized[0];
        let p1 = self.serialized[1 % self.serialized.len()];
        let main = 0u16;
        let east = 1u16;
        let west = 2u16;
        let bin_main = self.cat.location(main).bins[0];
        let bin_east = self.cat.location(east).bins[0];
        let mut out = Vec::new();

        // Full lifecycle: PO receipt at Main, transfer to the second location, sold there,
        // picked, packed, shipped, returned and restocked into RETURNS.
        {
            let s = self.new_serial(p0, Self::at(2024, 2, 5, 15));
            let po = self.buy(Self::at(2024, 2, 1, 15), main, p0, vec![s], bin_main, Self::at(2024, 2, 5, 15));
            let st = self.new_transfer(Self::at(2024, 2, 12, 14), main, east);
            self.st_line(st, p0, Qty::serials(vec![s], false), bin_main, bin_east, Self::at(2024, 2, 12, 14));
            self.st_status(st, "completed", Some(Self::at(2024, 2, 12, 19)), Some(Self::at(2024, 2, 14, 16)));
            let (so, shipped) = self.sell(Self::at(2024, 3, 1, 15), east, p0, &[(s, bin_east)], east, Stage::Shipped);
            let rs = self.returns_sub;
            self.so_return(so, p0, vec![s], shipped + 18 * DAY, Some((east, rs)));
            out.push((
                "full_lifecycle",
                PlantedStory {
                    serial: s,
                    product: p0,
                    docs: vec![GenRef::Po(self.pos[po].id), GenRef::St(self.sts[st].id), GenRef::So(self.sos[so].id)],
                    on_hand: Some((east, rs)),
                },
            ));
        }
        // Vendor return: two received, one sent back.
        {
            let t = Self::at(2024, 4, 3, 14);
            let keep = self.new_serial(p1, t);
            let s = self.new_serial(p1, t);
            let po = self.buy(Self::at(2024, 4, 1, 14), main, p1, vec![keep, s], bin_main, t);
            self.po_unstock(po, p1, vec![s], main, bin_main, Self::at(2024, 4, 15, 16));
            out.push((
                "vendor_return",
                PlantedStory { serial: s, product: p1, docs: vec![GenRef::Po(self.pos[po].id)], on_hand: None },
            ));
        }
        // Adjusted out.
        {
            let s = self.new_serial(p0, Self::at(2024, 5, 8, 15));
            let po = self.buy(Self::at(2024, 5, 6, 15), main, p0, vec![s], bin_main, Self::at(2024, 5, 8, 15));
            let t = Self::at(2024, 6, 10, 17);
            let sa = self.new_adjustment(t, main, "Damaged in storage");
            self.sa_line(sa, p0, Qty::serials(vec![s], true), bin_main, t);
            out.push((
                "adjusted_out",
                PlantedStory {
                    serial: s,
                    product: p0,
                    docs: vec![GenRef::Po(self.pos[po].id), GenRef::Sa(self.sas[sa].id)],
                    on_hand: None,
                },
            ));
        }
        // On an open transfer (stock not moved), and in transit (left Main, not arrived).
        for (name, status) in [("on_open_transfer", "open"), ("in_transit", "inTransit")] {
            let day = if status == "open" { 3 } else { 10 };
            let tr = Self::at(2026, 8, day + 2, 14);
            let s = self.new_serial(p0, tr);
            let po = self.buy(Self::at(2026, 8, day, 14), main, p0, vec![s], bin_main, tr);
            let t = Self::at(2026, 10, if status == "open" { 20 } else { 22 }, 14);
            let st = self.new_transfer(t, main, west);
            let to_sub = self.bin(west);
            self.st_line(st, p0, Qty::serials(vec![s], false), bin_main, to_sub, t);
            if status == "inTransit" {
                self.st_status(st, status, Some(t + 3 * HOUR), None);
            }
            out.push((
                name,
                PlantedStory {
                    serial: s,
                    product: p0,
                    docs: vec![GenRef::Po(self.pos[po].id), GenRef::St(self.sts[st].id)],
                    on_hand: (status == "open").then_some((main, bin_main)),
                },
            ));
        }
        // The same serial string under two products (each history plausible on its own, but
        // one_serial_two_products for `audit anomalies`): product A's unit is sold, product B's
        // stays on the shelf.
        if faults {
            let pb = self.serialized[2 % self.serialized.len()];
            let t = Self::at(2024, 7, 2, 15);
            let s = self.new_serial(p0, t);
            let po_a = self.buy(Self::at(2024, 7, 1, 15), main, p0, vec![s], bin_main, t);
            let (so_a, _) = self.sell(Self::at(2024, 8, 5, 15), main, p0, &[(s, bin_main)], main, Stage::Shipped);
            let bin_b = self.bin(west);
            let po_b = self.buy(Self::at(2024, 7, 9, 15), west, pb, vec![s], bin_b, Self::at(2024, 7, 12, 15));
            out.push((
                "two_products_a",
                PlantedStory {
                    serial: s,
                    product: p0,
                    docs: vec![GenRef::Po(self.pos[po_a].id), GenRef::So(self.sos[so_a].id)],
                    on_hand: None,
                },
            ));
            out.push((
                "two_products_b",
                PlantedStory {
                    serial: s,
                    product: pb,
                    docs: vec![GenRef::Po(self.pos[po_b].id)],
                    on_hand: Some((west, bin_b)),
                },
            ));
        }
        if faults {
            // Planted once at fixed dates for the scenario, and again at random dates on
            // larger scales so faults stay a small but present share of the data.
            let extra = plan.so / 2000;
            let fixed = [Self::at(2024, 6, 3, 15), Self::at(2024, 10, 1, 15), Self::at(2025, 1, 15, 15)];
            for round in 0..=extra {
                let base = |g: &mut Gen, i: usize| {
                    if round == 0 { fixed[i] } else { g.rng.random_range(START + 30 * DAY..END - 200 * DAY) }
                };
                let t = base(self, 0);
                let story = self.plant_sold_twice(t, p0, main, bin_main);
                if round == 0 {
                    out.push(("sold_twice", story));
                }
                let t = base(self, 1);
                let story = self.plant_adjusted_then_sold(t, p0, main, bin_main);
                if round == 0 {
                    out.push(("adjusted_out_then_sold", story));
                }
                let t = base(self, 2);
                let story = self.plant_never_received(t, p0, main, bin_main);
                if round == 0 {
                    out.push(("shipped_never_received", story));
                }
            }
            out.extend(self.plant_inventory_only(p0, main, east, west));
        }
        out
    }

    /// One serial for each way `inventoryLines` can disagree with the documents, through stock
    /// changes no document records (see `off_document`).
    fn plant_inventory_only(&mut self, p: u32, main: u16, east: u16, west: u16) -> Vec<(&'static str, PlantedStory)> {
        let bin_main = self.cat.location(main).bins[0];
        let bin_east = self.cat.location(east).bins[0];
        let bin_west = self.cat.location(west).bins[0];
        let mut out = Vec::new();
        let mut story = |name, serial, docs, on_hand| {
            out.push((name, PlantedStory { serial, product: p, docs, on_hand }));
        };
        // An opening balance entered on the product: on hand, in no document at all.
        let t = Self::at(2024, 1, 3, 12);
        let s = self.new_serial(p, t);
        self.off_document_move(p, main, bin_main, s, 1, t);
        story("never_in_documents", s, Vec::new(), Some((main, bin_main)));
        // An opening balance since put on a sales order not yet picked: documents know it, no
        // receipt does.
        let s = self.new_serial(p, t);
        self.off_document_move(p, main, bin_main, s, 1, t);
        let (so, _) = self.sell(Self::at(2026, 10, 26, 15), main, p, &[(s, bin_main)], main, Stage::Unfulfilled);
        story("on_hand_without_receipt", s, vec![GenRef::So(self.sos[so].id)], Some((main, bin_main)));
        // Received, then found missing by a stock count: gone per inFlow, on hand per history.
        let tr = Self::at(2025, 3, 4, 15);
        let s = self.new_serial(p, tr);
        let po = self.buy(Self::at(2025, 3, 1, 15), main, p, vec![s], bin_main, tr);
        self.off_document_move(p, main, bin_main, s, -1, Self::at(2025, 9, 30, 18));
        story("gone_but_history_on_hand", s, vec![GenRef::Po(self.pos[po].id)], None);
        // Received at Main, moved to the west by a stockroom scan.
        let tr = Self::at(2025, 4, 2, 15);
        let s = self.new_serial(p, tr);
        let po = self.buy(Self::at(2025, 4, 1, 15), main, p, vec![s], bin_main, tr);
        self.off_document_move(p, main, bin_main, s, -1, Self::at(2025, 5, 2, 11));
        self.off_document_move(p, west, bin_west, s, 1, Self::at(2025, 5, 2, 11));
        story("different_location", s, vec![GenRef::Po(self.pos[po].id)], Some((west, bin_west)));
        // Received at Main, and counted a second time in the east.
        let tr = Self::at(2025, 5, 6, 15);
        let s = self.new_serial(p, tr);
        let po = self.buy(Self::at(2025, 5, 5, 15), main, p, vec![s], bin_main, tr);
        self.off_document_move(p, east, bin_east, s, 1, Self::at(2025, 6, 30, 18));
        story("on_hand_in_two_locations", s, vec![GenRef::Po(self.pos[po].id)], Some((main, bin_main)));
        out
    }

    /// One serial in (`units` 1) or out (-1) at a place, by no document.
    fn off_document_move(&mut self, product: u32, location: u16, sub: Sub, serial: Sid, units: i64, t: i64) {
        let key = InvKey { product, location, sub, serial: Some(serial) };
        let date = self.dt(t, location);
        self.off_document.push(Movement { key, qty: units * QTY_ONE, date });
    }

    fn plant_sold_twice(&mut self, t: i64, p: u32, loc: u16, bin: Sub) -> PlantedStory {
        let s = self.new_serial(p, t + 2 * DAY);
        let po = self.buy(t, loc, p, vec![s], bin, t + 2 * DAY);
        let (so1, _) = self.sell(t + 17 * DAY, loc, p, &[(s, bin)], loc, Stage::Shipped);
        let (so2, _) = self.sell(t + 104 * DAY, loc, p, &[(s, bin)], loc, Stage::Shipped);
        // Two customers: one customer's second order would not be a sale to somebody else.
        if self.sos[so2].customer == self.sos[so1].customer {
            self.sos[so2].customer = (self.sos[so1].customer + 1) % self.cat.customers.len() as u32;
        }
        PlantedStory {
            serial: s,
            product: p,
            docs: vec![GenRef::Po(self.pos[po].id), GenRef::So(self.sos[so1].id), GenRef::So(self.sos[so2].id)],
            on_hand: None,
        }
    }

    fn plant_adjusted_then_sold(&mut self, t: i64, p: u32, loc: u16, bin: Sub) -> PlantedStory {
        let s = self.new_serial(p, t + 2 * DAY);
        let po = self.buy(t, loc, p, vec![s], bin, t + 2 * DAY);
        let ta = t + 19 * DAY;
        let sa = self.new_adjustment(ta, loc, "Lost");
        self.sa_line(sa, p, Qty::serials(vec![s], true), bin, ta);
        let (so, _) = self.sell(t + 35 * DAY, loc, p, &[(s, bin)], loc, Stage::Shipped);
        PlantedStory {
            serial: s,
            product: p,
            docs: vec![GenRef::Po(self.pos[po].id), GenRef::Sa(self.sas[sa].id), GenRef::So(self.sos[so].id)],
            on_hand: None,
        }
    }

    fn plant_never_received(&mut self, t: i64, p: u32, loc: u16, bin: Sub) -> PlantedStory {
        let s = self.new_serial(p, t);
        let (so, _) = self.sell(t, loc, p, &[(s, bin)], loc, Stage::Shipped);
        PlantedStory { serial: s, product: p, docs: vec![GenRef::So(self.sos[so].id)], on_hand: None }
    }

    /// One serial for each kind of `audit anomalies` the faults above do not give. Each story
    /// keeps inFlow's stock consistent with its documents (what is on hand is where the history
    /// says), so that reconciliation finds nothing more than the faults above.
    fn plant_anomalies(&mut self) -> Vec<(&'static str, PlantedStory)> {
        let p = self.serialized[0];
        let (main, east, west) = (0u16, 1u16, 2u16);
        let bin_main = self.cat.location(main).bins[0];
        let bin_east = self.cat.location(east).bins[0];
        let bin_west = self.cat.location(west).bins[0];
        let mut out = Vec::new();
        // In twice: received on two purchase orders, a duplicate receipt.
        let t = Self::at(2025, 2, 3, 15);
        let s = self.new_serial(p, t);
        let po1 = self.buy(Self::at(2025, 2, 1, 15), main, p, vec![s], bin_main, t);
        let po2 = self.buy(Self::at(2025, 2, 10, 15), main, p, vec![s], bin_main, Self::at(2025, 2, 12, 15));
        let docs = vec![GenRef::Po(self.pos[po1].id), GenRef::Po(self.pos[po2].id)];
        out.push(("in_twice", PlantedStory { serial: s, product: p, docs, on_hand: Some((main, bin_main)) }));
        // Moved from elsewhere: received at Main, moved west by a stockroom scan no document
        // records, then picked there.
        let t = Self::at(2025, 6, 3, 15);
        let s = self.new_serial(p, t);
        let po = self.buy(Self::at(2025, 6, 2, 15), main, p, vec![s], bin_main, t);
        self.off_document_move(p, main, bin_main, s, -1, Self::at(2025, 6, 20, 11));
        self.off_document_move(p, west, bin_west, s, 1, Self::at(2025, 6, 20, 11));
        let (so, _) = self.sell(Self::at(2025, 7, 1, 15), west, p, &[(s, bin_west)], west, Stage::Shipped);
        let docs = vec![GenRef::Po(self.pos[po].id), GenRef::So(self.sos[so].id)];
        out.push(("moved_from_elsewhere", PlantedStory { serial: s, product: p, docs, on_hand: None }));
        // Stuck in transit: sent east on a transfer that never arrives.
        let t = Self::at(2025, 8, 5, 15);
        let s = self.new_serial(p, t);
        let po = self.buy(Self::at(2025, 8, 4, 15), main, p, vec![s], bin_main, t);
        let ts = Self::at(2025, 9, 1, 14);
        let st = self.new_transfer(ts, main, east);
        self.st_line(st, p, Qty::serials(vec![s], false), bin_main, bin_east, ts);
        self.st_status(st, "inTransit", Some(ts + 3 * HOUR), None);
        let docs = vec![GenRef::Po(self.pos[po].id), GenRef::St(self.sts[st].id)];
        out.push(("stuck_in_transit", PlantedStory { serial: s, product: p, docs, on_hand: None }));
        // Returned, never sold: a customer brings back (and it is restocked) a unit no recorded
        // sale shipped, on an order that holds only the return.
        let t = Self::at(2025, 10, 7, 15);
        let s = self.new_serial(p, t);
        let so = self.new_so(t, main);
        let rs = self.returns_sub;
        self.so_return(so, p, vec![s], t + DAY, Some((main, rs)));
        let docs = vec![GenRef::So(self.sos[so].id)];
        out.push(("returned_never_sold", PlantedStory { serial: s, product: p, docs, on_hand: Some((main, rs)) }));
        out
    }

    // -----------------------------------------------------------------------------------------
    // Random business

    fn opening_stock(&mut self, n: usize) {
        for i in 0..n {
            let t = START + DAY + (i as i64 * 20 * DAY) / n as i64;
            let loc = if i % 3 == 2 { self.rng.random_range(0..self.cat.locations.len() as u16) } else { 0 };
            self.random_po(self.biz(t, loc), loc, true);
        }
    }

    fn run(&mut self, plan: &Plan, po_left: usize) {
        let weights = [
            (Kind::So, plan.so),
            (Kind::Po, po_left),
            (Kind::Sa, plan.sa),
            (Kind::St, plan.st),
            (Kind::Mo, plan.mo),
            (Kind::Sc, plan.sc),
        ];
        let total: usize = weights.iter().map(|w| w.1).sum();
        if total == 0 {
            return;
        }
        let t0 = START + 21 * DAY;
        let t1 = END - DAY;
        let step = ((t1 - t0) / total as i64).max(1);
        // Exact counts, shuffled: the documents of each kind spread over the whole period.
        let mut kinds: Vec<Kind> = weights.iter().flat_map(|(k, n)| std::iter::repeat_n(*k, *n)).collect();
        kinds.shuffle(&mut self.rng);
        for (i, kind) in kinds.into_iter().enumerate() {
            let t = t0 + i as i64 * step + self.rng.random_range(0..step);
            self.release_until(t - RELEASE_LAG);
            let loc = self.random_location();
            let t = self.biz(t, loc);
            match kind {
                Kind::So => self.random_so(t, loc),
                Kind::Po => self.random_po(t, loc, false),
                Kind::Sa => self.random_adjustment(t, loc),
                Kind::St => self.random_transfer(t),
                Kind::Mo => self.random_mo(t, loc),
                Kind::Sc => self.random_count(t, loc),
            }
        }
    }

    fn random_po(&mut self, t: i64, loc: u16, opening: bool) {
        let roll = self.rng.random_range(0..100);
        let quote = !opening && roll < 4;
        let cancelled = !opening && (4..7).contains(&roll);
        let po = self.new_po(t, loc);
        let n_lines = self.rng.random_range(1..=3);
        let mut wanted = Vec::new();
        for _ in 0..n_lines {
            let (product, units) = if self.rng.random_bool(0.8) {
                (self.pick(&self.serialized.clone()), self.rng.random_range(2..=8))
            } else {
                (self.pick(&self.nonserial.clone()), self.rng.random_range(10..=60))
            };
            // Some vendors announce the serials with the order (an advance ship notice): the
            // order line carries them, and the receipts use the same ones.
            let advised = (self.cat.product(product).track_serials && self.rng.random_bool(0.15))
                .then(|| (0..units).map(|_| self.new_serial(product, t)).collect::<Vec<Sid>>());
            let qty = advised.clone().map_or(Qty::bulk(units), |serials| Qty::serials(serials, false));
            self.po_line(po, product, qty, t, None);
            wanted.push((product, units, advised));
        }
        if quote {
            let p = &mut self.pos[po];
            p.is_quote = true;
            p.inventory_status = "quote";
            p.payment_status = "quote";
            return;
        }
        if cancelled {
            let tc = t + self.rng.random_range(HOUR..5 * DAY);
            self.po_touch(po, tc);
            self.pos[po].is_cancelled = true;
            return;
        }
        let first = t + self.rng.random_range(2 * DAY..14 * DAY);
        let mut received_all = true;
        let mut received_any = false;
        for (product, units, mut advised) in wanted {
            let track = self.cat.product(product).track_serials;
            let split = units >= 2 && self.rng.random_bool(0.25);
            let chunks: Vec<(i64, i64)> = if split {
                let k = units / 2;
                let later = first + self.rng.random_range(3 * DAY..20 * DAY);
                vec![(k, first), (units - k, later)]
            } else {
                vec![(units, first)]
            };
            // Some split deliveries still wait for their second part (a backorder).
            let backordered = split && self.rng.random_bool(0.3);
            for (i, (k, tr)) in chunks.into_iter().enumerate() {
                if tr > END || (backordered && i == 1) {
                    received_all = false;
                    continue;
                }
                received_any = true;
                let sub = if self.rng.random_bool(0.15) { self.receiving_sub } else { self.bin(loc) };
                if !track {
                    self.po_receive(po, product, Qty::bulk(k), loc, sub, tr);
                    self.arrive(tr, Arrival::Bulk { product, loc, sub, units: k });
                    continue;
                }
                let serials: Vec<Sid> = match advised.as_mut() {
                    Some(list) => list.drain(..k as usize).collect(),
                    None => (0..k).map(|_| self.new_serial(product, tr)).collect(),
                };
                self.po_receive(po, product, Qty::serials(serials.clone(), false), loc, sub, tr);
                let mut keep = serials;
                let tu = tr + self.rng.random_range(3 * DAY..20 * DAY);
                if keep.len() >= 2 && tu <= END && self.rng.random_bool(0.04) {
                    // A defective unit set aside and sent back: never available for sale.
                    let back = keep.pop().map(|s| vec![s]).unwrap_or_default();
                    self.po_unstock(po, product, back, loc, sub, tu);
                }
                for sid in keep {
                    self.arrive(tr, Arrival::Serial { product, loc, sub, sid });
                }
            }
        }
        let p = &mut self.pos[po];
        if received_all {
            p.inventory_status = "fulfilled";
            p.is_completed = true;
        } else if received_any {
            p.inventory_status = "started";
        }
        let roll = self.rng.random_range(0..100);
        self.pos[po].payment_status = match (received_all, roll) {
            (true, 0..85) => "paid",
            (_, 0..30) => "partial",
            _ => "unpaid",
        };
    }

    fn random_so(&mut self, t: i64, loc: u16) {
        let roll = self.rng.random_range(0..100);
        let quote = roll < 4;
        let cancelled = (4..7).contains(&roll);
        let near_end = t > END - 10 * DAY;
        let mut stage = match (near_end, self.rng.random_range(0..100)) {
            (false, 0..84) => Stage::Shipped,
            (false, 84..90) => Stage::Packed,
            (false, 90..95) => Stage::Picked,
            (true, 0..40) => Stage::Shipped,
            (true, 40..60) => Stage::Packed,
            (true, 60..80) => Stage::Picked,
            _ => Stage::Unfulfilled,
        };
        if cancelled && matches!(stage, Stage::Packed | Stage::Shipped) {
            stage = Stage::Picked;
        }
        let tp = t + self.rng.random_range(HOUR..20 * HOUR);
        let tk = tp + self.rng.random_range(HOUR..4 * HOUR);
        let tship = tk + self.rng.random_range(2 * HOUR..30 * HOUR);
        if tship > END && stage == Stage::Shipped {
            stage = Stage::Packed;
        }
        if tk > END && stage == Stage::Packed {
            stage = Stage::Picked;
        }
        if tp > END {
            stage = Stage::Unfulfilled;
        }
        let take_stock = !quote && stage != Stage::Unfulfilled;

        let so = self.new_so(t, loc);
        // (order line, product, picks as (location, sublocation, serials or units))
        struct Picked {
            line: usize,
            product: u32,
            picks: Vec<(u16, Sub, Qty)>,
        }
        let mut picked: Vec<Picked> = Vec::new();
        let n_lines = self.rng.random_range(1..=3);
        for _ in 0..n_lines {
            if self.rng.random_bool(0.78) {
                let want = [1, 1, 1, 2, 2, 3, 4][self.rng.random_range(0..7)];
                if !take_stock {
                    // Half the quotes name the units on offer; quoting takes nothing from stock.
                    if quote
                        && self.rng.random_bool(0.5)
                        && let Some((p, from)) = self.find_stock(loc, true)
                    {
                        let offered = self.peek_serials(p, from, want as usize);
                        self.so_line(so, p, Qty::serials(offered, false), t);
                        continue;
                    }
                    let p = self.pick(&self.serialized.clone());
                    self.so_line(so, p, Qty::bulk(want), t);
                    continue;
                }
                let Some((p, from)) = self.find_stock(loc, true) else {
                    continue;
                };
                let got = self.take_serials(p, from, want as usize);
                let ids: Vec<Sid> = got.iter().map(|(s, _)| *s).collect();
                let line = self.so_line(so, p, Qty::serials(ids, false), t);
                let mut subs: Vec<Sub> = got.iter().map(|(_, s)| *s).collect();
                subs.sort_unstable();
                subs.dedup();
                let picks = subs
                    .into_iter()
                    .map(|sub| {
                        let here = got.iter().filter(|(_, s)| *s == sub).map(|(x, _)| *x).collect();
                        (from, sub, Qty::serials(here, false))
                    })
                    .collect();
                picked.push(Picked { line, product: p, picks });
            } else {
                let p = self.pick(&self.nonserial.clone());
                let units = self.rng.random_range(1..=10);
                if !take_stock {
                    self.so_line(so, p, Qty::bulk(units), t);
                    continue;
                }
                let mut from = loc;
                let mut sub = self.take_bulk(p, loc, units);
                if sub.is_none() {
                    from = self.rng.random_range(0..self.cat.locations.len() as u16);
                    sub = self.take_bulk(p, from, units);
                }
                let Some(sub) = sub else { continue };
                let line = self.so_line(so, p, Qty::bulk(units), t);
                picked.push(Picked { line, product: p, picks: vec![(from, sub, Qty::bulk(units))] });
            }
        }
        if self.sos[so].lines.is_empty() {
            // Nothing in stock: a backorder without serials.
            let p = self.pick(&self.nonserial.clone());
            self.so_line(so, p, Qty::bulk(1), t);
            if !quote {
                stage = Stage::Unfulfilled;
            }
        }
        if quote {
            let s = &mut self.sos[so];
            s.is_quote = true;
            s.inventory_status = "quote";
            s.payment_status = "quote";
            return;
        }
        if picked.is_empty() {
            stage = Stage::Unfulfilled;
        }
        if stage != Stage::Unfulfilled {
            self.so_touch(so, tp);
            self.sos[so].inventory_status = "started";
            for pk in &picked {
                for (from, sub, q) in &pk.picks {
                    self.so_pick(so, pk.product, q.clone(), *from, *sub, tp);
                }
            }
        }
        let two_boxes = picked.len() > 1 && self.rng.random_bool(0.3);
        if matches!(stage, Stage::Packed | Stage::Shipped) {
            for (i, pk) in picked.iter().enumerate() {
                let container = if two_boxes && i % 2 == 1 { "2" } else { "1" };
                let qty = self.sos[so].lines[pk.line].qty.clone();
                self.so_pack(so, pk.product, qty, container, tk);
            }
        }
        let mut shipped_at = tship;
        if stage == Stage::Shipped {
            self.so_touch(so, tship);
            if two_boxes && self.rng.random_bool(0.5) {
                self.so_ship(so, vec!["1".into()], tship);
                shipped_at = tship + self.rng.random_range(HOUR..2 * DAY);
                if shipped_at > END {
                    shipped_at = tship;
                }
                self.so_ship(so, vec!["2".into()], shipped_at);
            } else if two_boxes {
                self.so_ship(so, vec!["1".into(), "2".into()], tship);
            } else {
                self.so_ship(so, vec!["1".into()], tship);
            }
            self.finish_shipped(so, shipped_at);
        }
        if cancelled {
            let tc = t + self.rng.random_range(DAY..3 * DAY);
            self.so_touch(so, tc);
            self.sos[so].is_cancelled = true;
            // Cancelling voids the picks: the stock is back where it was picked from.
            for pk in &picked {
                for (from, sub, q) in &pk.picks {
                    self.put_back(tc, pk.product, *from, *sub, q);
                }
            }
            return;
        }
        if stage != Stage::Shipped {
            return;
        }
        // Customer returns.
        let serial_lines: Vec<usize> =
            picked.iter().filter(|pk| !self.sos[so].lines[pk.line].qty.serials.is_empty()).map(|pk| pk.line).collect();
        if serial_lines.is_empty() || !self.rng.random_bool(0.06) {
            return;
        }
        let tr = shipped_at + self.rng.random_range(3 * DAY..40 * DAY);
        if tr + DAY > END {
            return;
        }
        let li = self.pick(&serial_lines);
        let line = &self.sos[so].lines[li];
        let product = line.product;
        let s = line.qty.serials[self.rng.random_range(0..line.qty.serials.len())];
        let restock = if self.rng.random_bool(0.8) { Some((loc, self.returns_sub)) } else { None };
        if let Some(when) = self.so_return(so, product, vec![s], tr, restock) {
            let (rloc, rsub) = restock.unwrap_or((loc, self.returns_sub));
            self.arrive(when, Arrival::Serial { product, loc: rloc, sub: rsub, sid: s });
        }
    }

    fn put_back(&mut self, t: i64, product: u32, loc: u16, sub: Sub, q: &Qty) {
        if q.serials.is_empty() {
            self.arrive(t, Arrival::Bulk { product, loc, sub, units: q.amount / QTY_ONE });
        } else {
            for &sid in &q.serials {
                self.arrive(t, Arrival::Serial { product, loc, sub, sid });
            }
        }
    }

    fn random_transfer(&mut self, t: i64) {
        let from = self.rng.random_range(0..self.cat.locations.len() as u16);
        let Some((p, from)) = self.find_stock(from, true) else {
            return;
        };
        let to = self.other_location(from);
        let t = self.biz(t, from);
        let cancelled = self.rng.random_bool(0.03);
        let st = self.new_transfer(t, from, to);
        let mut moved: Vec<(u32, Sub, Sub, Qty)> = Vec::new();
        let k = self.rng.random_range(1..=4);
        let got = self.take_serials(p, from, k);
        let to_sub = self.bin(to);
        let mut subs: Vec<Sub> = got.iter().map(|(_, s)| *s).collect();
        subs.sort_unstable();
        subs.dedup();
        for sub in subs {
            let here: Vec<Sid> = got.iter().filter(|(_, s)| *s == sub).map(|(x, _)| *x).collect();
            moved.push((p, sub, to_sub, Qty::serials(here, false)));
        }
        if self.rng.random_bool(0.3) {
            let bp = self.pick(&self.nonserial.clone());
            let units = self.rng.random_range(1..=10);
            if let Some(sub) = self.take_bulk(bp, from, units) {
                moved.push((bp, sub, to_sub, Qty::bulk(units)));
            }
        }
        for (product, fs, ts, q) in &moved {
            self.st_line(st, *product, q.clone(), *fs, *ts, t);
        }
        let tsent = t + self.rng.random_range(0..20 * HOUR);
        let trecv = tsent + self.rng.random_range(DAY..6 * DAY);
        let roll = self.rng.random_range(0..100);
        let mut status = if t > END - 30 * DAY {
            match roll {
                0..35 => "open",
                35..70 => "inTransit",
                _ => "completed",
            }
        } else {
            match roll {
                0..2 => "open",
                2..3 => "inTransit",
                _ => "completed",
            }
        };
        if cancelled {
            status = "open";
        }
        if status == "completed" && trecv > END {
            status = "inTransit";
        }
        if status == "inTransit" && tsent > END {
            status = "open";
        }
        if status == "inTransit" && tsent < END - TRANSIT_DAYS * DAY {
            status = "completed";
        }
        match status {
            "completed" => {
                self.st_status(st, status, Some(tsent), Some(trecv));
                for (product, _, ts, q) in &moved {
                    self.put_back(trecv, *product, to, *ts, q);
                }
            }
            "inTransit" => self.st_status(st, status, Some(tsent), None),
            _ => {}
        }
        if cancelled {
            let tc = t + self.rng.random_range(HOUR..2 * DAY);
            let v = self.pv(tc);
            self.sts[st].ts = self.sts[st].ts.max(v);
            self.sts[st].is_cancelled = true;
            for (product, fs, _, q) in &moved {
                self.put_back(tc, *product, from, *fs, q);
            }
        }
        // Open (not cancelled) and in-transit stock stays reserved: it is never sold again.
    }

    fn random_adjustment(&mut self, t: i64, loc: u16) {
        let cancelled = self.rng.random_bool(0.03);
        let out = self.rng.random_bool(0.5);
        if out && let Some((p, _)) = self.find_stock(loc, false) {
            let sa = self.new_adjustment(t, loc, "Damaged or lost");
            let k = self.rng.random_range(1..=2);
            let got = self.take_serials(p, loc, k);
            let mut subs: Vec<Sub> = got.iter().map(|(_, s)| *s).collect();
            subs.sort_unstable();
            subs.dedup();
            for sub in subs {
                let here: Vec<Sid> = got.iter().filter(|(_, s)| *s == sub).map(|(x, _)| *x).collect();
                let q = Qty::serials(here, true);
                if cancelled {
                    let back = Qty::serials(q.serials.clone(), false);
                    self.put_back(t + DAY, p, loc, sub, &back);
                }
                self.sa_line(sa, p, q, sub, t);
            }
            self.finish_adjustment(sa, t, cancelled);
            return;
        }
        let sa = self.new_adjustment(t, loc, "Found during cycle count");
        let sub = self.bin(loc);
        if self.rng.random_bool(0.7) {
            let p = self.pick(&self.serialized.clone());
            let k = self.rng.random_range(1..=3);
            let serials: Vec<Sid> = (0..k).map(|_| self.new_serial(p, t)).collect();
            if !cancelled {
                self.put_back(t, p, loc, sub, &Qty::serials(serials.clone(), false));
            }
            self.sa_line(sa, p, Qty::serials(serials, false), sub, t);
        } else {
            let p = self.pick(&self.nonserial.clone());
            let units = self.rng.random_range(1..=20);
            if !cancelled {
                self.put_back(t, p, loc, sub, &Qty::bulk(units));
            }
            self.sa_line(sa, p, Qty::bulk(units), sub, t);
        }
        self.finish_adjustment(sa, t, cancelled);
    }

    fn finish_adjustment(&mut self, sa: usize, t: i64, cancelled: bool) {
        if cancelled {
            let v = self.pv(t + DAY);
            self.sas[sa].ts = self.sas[sa].ts.max(v);
            self.sas[sa].is_cancelled = true;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Manufacturing orders and stock counts

    /// A manufacturing order at `loc`, ordered at `t`, its components picked at `tp` and (when
    /// `done`) its units put away then. `units` holds each unit's serialized components (taken
    /// from stock by the caller, with the sublocation each came from); `bulk` a non-serialized
    /// component (product, units per order, sublocation). One root line per unit, or one root
    /// line for all of them (`one_line`). Returns the order's index and the units' serials.
    #[allow(clippy::too_many_arguments)]
    fn make_mo(
        &mut self,
        t: i64,
        loc: u16,
        finished: u32,
        units: &[Vec<(u32, Sid, Sub)>],
        bulk: Option<(u32, i64, Sub)>,
        one_line: bool,
        matchings: bool,
        status: &'static str,
        tp: i64,
        done: Option<i64>,
    ) -> (usize, Vec<Sid>, Sub) {
        let started = status != "open";
        let serials: Vec<Sid> = if started {
            units.iter().map(|_| self.new_serial(finished, done.unwrap_or(tp))).collect()
        } else {
            Vec::new()
        };
        let put_sub = self.bin(loc);
        let mut mo = ManufacturingOrder {
            id: self.uuid(),
            number: String::new(),
            location: loc,
            status,
            is_cancelled: false,
            order_date: self.dt(t, loc),
            due_date: Some(self.dt(t + 7 * DAY, loc)),
            completed_date: done.map(|d| self.dt(d, loc)),
            primary_product: finished,
            remarks: String::new(),
            last_modified_by: self.pick(&self.cat.team.clone()),
            lines: Vec::new(),
            pick_lines: Vec::new(),
            put_lines: Vec::new(),
            pick_matchings: Vec::new(),
            ts: self.pv(t),
        };
        // The bill of materials: (unit index or None for all, component product) -> line id.
        let mut component_line: Vec<(Option<usize>, u32, Uuid)> = Vec::new();
        let groups: Vec<Vec<usize>> =
            if one_line { vec![(0..units.len()).collect()] } else { (0..units.len()).map(|u| vec![u]).collect() };
        for group in &groups {
            let root_serials: Vec<Sid> = group.iter().filter_map(|u| serials.get(*u).copied()).collect();
            let n = group.len() as i64;
            let mut root = MoLine {
                id: self.uuid(),
                product: finished,
                qty: if root_serials.is_empty() { Qty::bulk(n) } else { Qty::serials(root_serials, false) },
                children: Vec::new(),
                ts: self.pv(t),
            };
            let mut products: Vec<u32> = group.iter().flat_map(|u| units[*u].iter().map(|c| c.0)).collect();
            products.sort_unstable();
            products.dedup();
            for p in products {
                let child =
                    MoLine { id: self.uuid(), product: p, qty: Qty::bulk(n), children: Vec::new(), ts: self.pv(t) };
                let unit = if one_line { None } else { Some(group[0]) };
                component_line.push((unit, p, child.id));
                root.children.push(child);
            }
            if let Some((bp, units_needed, _)) = bulk.filter(|_| group.contains(&0)) {
                let child = MoLine {
                    id: self.uuid(),
                    product: bp,
                    qty: Qty::bulk(units_needed),
                    children: Vec::new(),
                    ts: self.pv(t),
                };
                component_line.push((if one_line { None } else { Some(0) }, bp, child.id));
                root.children.push(child);
            }
            mo.lines.push(root);
        }
        if started {
            // One pick line per component product and sublocation.
            // (product, sublocation, [(unit, serial)])
            type Pick = (u32, Sub, Vec<(usize, Sid)>);
            let mut picks: Vec<Pick> = Vec::new();
            for (u, comps) in units.iter().enumerate() {
                for &(p, sid, sub) in comps {
                    match picks.iter_mut().find(|(pp, ss, _)| *pp == p && *ss == sub) {
                        Some(pick) => pick.2.push((u, sid)),
                        None => picks.push((p, sub, vec![(u, sid)])),
                    }
                }
            }
            for (p, sub, taken) in picks {
                let sids: Vec<Sid> = taken.iter().map(|(_, s)| *s).collect();
                let line = MoveLine {
                    id: self.uuid(),
                    product: p,
                    qty: Qty::serials(sids, false),
                    location: loc,
                    sub,
                    date: self.dt(tp, loc),
                    ts: self.pv(tp),
                };
                if matchings {
                    for (u, sid) in taken {
                        let unit = if one_line { None } else { Some(u) };
                        let Some(&(_, _, target)) = component_line.iter().find(|(cu, cp, _)| *cu == unit && *cp == p)
                        else {
                            continue;
                        };
                        let m = PickMatching {
                            id: self.uuid(),
                            line: target,
                            pick_line: line.id,
                            qty: QTY_ONE,
                            serial: Some(sid),
                            ts: self.pv(tp),
                        };
                        mo.pick_matchings.push(m);
                    }
                }
                mo.pick_lines.push(line);
            }
            if let Some((bp, n, sub)) = bulk {
                let line = MoveLine {
                    id: self.uuid(),
                    product: bp,
                    qty: Qty::bulk(n),
                    location: loc,
                    sub,
                    date: self.dt(tp, loc),
                    ts: self.pv(tp),
                };
                if matchings && let Some(&(_, _, target)) = component_line.iter().find(|(_, cp, _)| *cp == bp) {
                    let m = PickMatching {
                        id: self.uuid(),
                        line: target,
                        pick_line: line.id,
                        qty: n * QTY_ONE,
                        serial: None,
                        ts: self.pv(tp),
                    };
                    mo.pick_matchings.push(m);
                }
                mo.pick_lines.push(line);
            }
            // One put line per root line: the units it builds.
            for (group, root) in groups.iter().zip(mo.lines.iter().map(|l| l.id).collect::<Vec<_>>()) {
                let units_here: Vec<Sid> = group.iter().filter_map(|u| serials.get(*u).copied()).collect();
                let put = PutLine {
                    id: self.uuid(),
                    line: root,
                    product: finished,
                    qty: Qty::serials(units_here, false),
                    location: loc,
                    sub: put_sub,
                    ts: self.pv(done.unwrap_or(tp)),
                };
                mo.put_lines.push(put);
            }
            mo.ts = mo.ts.max(self.pv(done.unwrap_or(tp)));
        }
        self.mos.push(mo);
        (self.mos.len() - 1, serials, put_sub)
    }

    fn random_mo(&mut self, t: i64, loc: u16) {
        // (status, units, one line, matchings) of the first orders, then at random.
        const FIRST: [(&str, usize, bool, bool); 6] = [
            ("completed", 2, false, true),
            ("completed", 2, true, true),
            ("completed", 2, false, false),
            ("cancelled", 1, false, true),
            ("open", 1, false, true),
            ("inProgress", 2, false, true),
        ];
        let forced = FIRST.get(self.random_mos).copied();
        let finished = self.pick(&self.serialized.clone());
        let units = match forced {
            Some((_, units, _, _)) => units,
            None if self.rng.random_bool(0.25) => 2,
            None => 1,
        };
        let mut products = Vec::new();
        for _ in 0..self.rng.random_range(1..=2) {
            if let Some((p, _)) = self.find_stock(loc, false)
                && p != finished
                && !products.contains(&p)
                && self.available(p, loc) >= units
            {
                products.push(p);
            }
        }
        if products.is_empty() {
            return;
        }
        self.random_mos += 1;
        let roll = self.rng.random_range(0..100);
        let near_end = t > END - 20 * DAY;
        let mut status = match (forced, roll) {
            (Some((status, ..)), _) => status,
            (None, 0..6) => "open",
            (None, 6..10) => "cancelled",
            (None, 10..20) => "inProgress",
            _ if near_end && roll < 60 => "inProgress",
            _ => "completed",
        };
        let tp = t + self.rng.random_range(HOUR..2 * DAY);
        let tc = tp + self.rng.random_range(4 * HOUR..3 * DAY);
        if status == "completed" && tc > END {
            status = "inProgress";
        }
        if tp > END {
            status = "open";
        }
        let cancelled = status == "cancelled";
        let status = if cancelled { "inProgress" } else { status };
        let mut taken: Vec<Vec<(u32, Sid, Sub)>> = vec![Vec::new(); units];
        if status != "open" {
            for &p in &products {
                for unit in taken.iter_mut() {
                    if let Some(&(sid, sub)) = self.take_serials(p, loc, 1).first() {
                        unit.push((p, sid, sub));
                    }
                }
            }
        } else {
            // Planned only: the bill names the components, nothing is taken yet.
            for unit in taken.iter_mut() {
                unit.extend(products.iter().map(|&p| (p, 0, 0)));
            }
        }
        let bulk = if (forced.is_some() || self.rng.random_bool(0.3)) && status != "open" {
            // Any bulk product with stock here (a cable, a case).
            let n = self.rng.random_range(1..=4);
            let start = self.rng.random_range(0..self.nonserial.len());
            (0..self.nonserial.len()).find_map(|i| {
                let bp = self.nonserial[(start + i) % self.nonserial.len()];
                self.take_bulk(bp, loc, n).map(|sub| (bp, n, sub))
            })
        } else {
            None
        };
        let (one_line, matchings) = match forced {
            Some((_, _, one_line, matchings)) => (one_line, matchings),
            None => (units == 2 && self.rng.random_bool(0.3), self.rng.random_bool(0.85)),
        };
        let done = (status == "completed").then_some(tc);
        let (mo, serials, put_sub) =
            self.make_mo(t, loc, finished, &taken, bulk, one_line, matchings, status, tp, done);
        if cancelled {
            // Cancelling voids the picks: the components are back where they were picked from.
            let tx = tp + self.rng.random_range(HOUR..DAY);
            let v = self.pv(tx);
            self.mos[mo].ts = self.mos[mo].ts.max(v);
            self.mos[mo].is_cancelled = true;
            for unit in &taken {
                for &(p, sid, sub) in unit {
                    self.arrive(tx, Arrival::Serial { product: p, loc, sub, sid });
                }
            }
            if let Some((bp, n, sub)) = bulk {
                self.arrive(tx, Arrival::Bulk { product: bp, loc, sub, units: n });
            }
        } else if let Some(tc) = done {
            for sid in serials {
                self.arrive(tc, Arrival::Serial { product: finished, loc, sub: put_sub, sid });
            }
        }
    }

    /// A stock count of one serialized product at `loc`, sheet lines per sublocation (two at
    /// most). A completed count removes the serials it missed and adds the ones it found; when it
    /// finds or misses any, it also makes an adjustment, listed only when the simulator is
    /// switched to (`from_count`).
    fn random_count(&mut self, t: i64, loc: u16) {
        let Some((p, _)) = self.find_stock(loc, false) else { return };
        let pool = self.pools.get(&(p, loc)).cloned().unwrap_or_default();
        let mut subs: Vec<Sub> = pool.iter().map(|(_, sub)| *sub).collect();
        subs.sort_unstable();
        subs.dedup();
        subs.truncate(2);
        let roll = self.rng.random_range(0..100);
        let tc = t + self.rng.random_range(2 * HOUR..10 * HOUR);
        // The first counts take each shape in turn; the first one both misses and finds.
        const FIRST: [&str; 4] = ["completed", "inProgress", "cancelled", "open"];
        let forced = FIRST.get(self.random_counts).copied();
        self.random_counts += 1;
        let mut status = match (forced, roll) {
            (Some(status), _) => status,
            (None, 0..4) => "cancelled",
            (None, 4..8) => "open",
            (None, 8..18) => "inProgress",
            _ => "completed",
        };
        if tc > END && status == "completed" {
            status = "inProgress";
        }
        let mut lines = Vec::new();
        for sub in subs {
            let snapshot: Vec<Sid> = pool.iter().filter(|(_, s)| *s == sub).map(|(sid, _)| *sid).collect();
            let mut counted = snapshot.clone();
            if status == "open" {
                counted.clear();
            } else {
                let first = self.random_counts == 1;
                if counted.len() > 1 && (first || self.rng.random_bool(0.35)) {
                    let i = self.rng.random_range(0..counted.len());
                    counted.remove(i);
                }
                if first || self.rng.random_bool(0.3) {
                    counted.push(self.new_serial(p, tc));
                }
            }
            lines.push((sub, snapshot, counted));
        }
        let cancelled = status == "cancelled";
        let status = if cancelled { "inProgress" } else { status };
        let done = (status == "completed").then_some(tc);
        let sc = self.make_count(t, loc, p, lines, status, done);
        if cancelled {
            let v = self.pv(tc);
            self.scs[sc].ts = self.scs[sc].ts.max(v);
            self.scs[sc].is_cancelled = true;
        }
        if let Some(tc) = done.filter(|_| !cancelled) {
            self.apply_count(sc, tc);
        }
    }

    /// A count with one sheet of `lines` (sublocation, expected serials, counted serials).
    fn make_count(
        &mut self,
        t: i64,
        loc: u16,
        product: u32,
        lines: Vec<(Sub, Vec<Sid>, Vec<Sid>)>,
        status: &'static str,
        done: Option<i64>,
    ) -> usize {
        let sheet_lines = lines
            .into_iter()
            .map(|(sub, snapshot, counted)| CountLine {
                id: self.uuid(),
                product,
                sub,
                snapshot: Qty::serials(snapshot, false),
                counted: Qty::serials(counted, false),
                ts: self.pv(done.unwrap_or(t)),
            })
            .collect();
        let started = (status != "open").then(|| self.dt(t, loc));
        let sheet = CountSheet {
            id: self.uuid(),
            number: 1,
            status: if status == "inReview" { "completed" } else { status },
            is_cancelled: false,
            started,
            completed: done.map(|d| self.dt(d, loc)),
            lines: sheet_lines,
            ts: self.pv(done.unwrap_or(t)),
        };
        let sc = StockCount {
            id: self.uuid(),
            number: String::new(),
            location: loc,
            status,
            is_cancelled: false,
            started_date: started,
            completed_date: done.map(|d| self.dt(d, loc)),
            remarks: String::new(),
            last_modified_by: self.pick(&self.cat.team.clone()),
            sheets: vec![sheet],
            ts: self.pv(done.unwrap_or(t)),
        };
        self.scs.push(sc);
        self.scs.len() - 1
    }

    /// A completed count's effect on stock, and the adjustment it makes when it changed any.
    fn apply_count(&mut self, sc: usize, tc: i64) {
        let (loc, id) = (self.scs[sc].location, self.scs[sc].id);
        let mut adj_lines = Vec::new();
        for l in self.scs[sc].sheets[0].lines.clone() {
            let (missing, found) = super::inventory::count_difference(&l);
            if let Some(pool) = self.pools.get_mut(&(l.product, loc)) {
                pool.retain(|(sid, _)| !missing.contains(sid));
            }
            for &sid in &found {
                self.arrive(tc, Arrival::Serial { product: l.product, loc, sub: l.sub, sid });
            }
            if !missing.is_empty() {
                adj_lines.push((l.product, Qty::serials(missing, true), l.sub));
            }
            if !found.is_empty() {
                adj_lines.push((l.product, Qty::serials(found, false), l.sub));
            }
        }
        if adj_lines.is_empty() {
            return;
        }
        let sa = self.new_adjustment(tc, loc, "");
        self.sas[sa].reason = self.cat.count_reason;
        self.sas[sa].from_count = Some(id);
        for (p, q, sub) in adj_lines {
            self.sa_line(sa, p, q, sub, tc);
        }
    }

    /// The planted stories of manufacturing and counting, in every company (clean data too):
    /// a chip built into a board, the board and a case into a laptop sold to a customer; a
    /// component consumed by an order still in progress; a count that misses one serial and
    /// finds another.
    fn plant_builds_and_counts(&mut self) -> Vec<(&'static str, PlantedStory)> {
        let n = self.serialized.len();
        let [chip_p, board_p, laptop_p, case_p, count_p] = [3, 4, 5, 6, 7].map(|i| self.serialized[i % n]);
        let main = 0u16;
        let bin = self.cat.location(main).bins[0];
        let mut out = Vec::new();
        let mut story = |name, serial, product, docs, on_hand| {
            out.push((name, PlantedStory { serial, product, docs, on_hand }));
        };

        // Two levels: chip -> board (MO 1), board + case -> laptop (MO 2), laptop sold.
        let tr = Self::at(2025, 2, 3, 15);
        let chip = self.new_serial(chip_p, tr);
        let case = self.new_serial(case_p, tr);
        let po_chip = self.buy(Self::at(2025, 2, 1, 15), main, chip_p, vec![chip], bin, tr);
        self.buy(Self::at(2025, 2, 1, 16), main, case_p, vec![case], bin, tr);
        let (mo1, boards, board_sub) = self.make_mo(
            Self::at(2025, 2, 10, 14),
            main,
            board_p,
            &[vec![(chip_p, chip, bin)]],
            None,
            false,
            true,
            "completed",
            Self::at(2025, 2, 10, 16),
            Some(Self::at(2025, 2, 11, 15)),
        );
        let board = boards[0];
        let (mo2, laptops, laptop_sub) = self.make_mo(
            Self::at(2025, 2, 15, 14),
            main,
            laptop_p,
            &[vec![(board_p, board, board_sub), (case_p, case, bin)]],
            None,
            false,
            true,
            "completed",
            Self::at(2025, 2, 15, 16),
            Some(Self::at(2025, 2, 16, 15)),
        );
        let laptop = laptops[0];
        let (so, _) =
            self.sell(Self::at(2025, 3, 1, 15), main, laptop_p, &[(laptop, laptop_sub)], main, Stage::Shipped);
        let (mo1, mo2) = (GenRef::Mo(self.mos[mo1].id), GenRef::Mo(self.mos[mo2].id));
        let so = GenRef::So(self.sos[so].id);
        story("build_component", chip, chip_p, vec![GenRef::Po(self.pos[po_chip].id), mo1], None);
        story("build_subassembly", board, board_p, vec![mo1, mo2], None);
        story("build_unit", laptop, laptop_p, vec![mo2, so], None);

        // A chip consumed by an order not completed yet: its board is pending.
        let tr = Self::at(2026, 9, 1, 15);
        let chip = self.new_serial(chip_p, tr);
        let po = self.buy(Self::at(2026, 8, 28, 15), main, chip_p, vec![chip], bin, tr);
        let (mo3, boards, _) = self.make_mo(
            Self::at(2026, 10, 20, 14),
            main,
            board_p,
            &[vec![(chip_p, chip, bin)]],
            None,
            false,
            true,
            "inProgress",
            Self::at(2026, 10, 20, 16),
            None,
        );
        let mo3 = GenRef::Mo(self.mos[mo3].id);
        story("build_in_progress_component", chip, chip_p, vec![GenRef::Po(self.pos[po].id), mo3], None);
        story("build_in_progress_unit", boards[0], board_p, vec![mo3], None);

        // A count at Main expecting two serials: one is not there, and an unexpected one is.
        let tr = Self::at(2025, 5, 20, 15);
        let missing = self.new_serial(count_p, tr);
        let kept = self.new_serial(count_p, tr);
        let po = self.buy(Self::at(2025, 5, 18, 15), main, count_p, vec![missing, kept], bin, tr);
        let tc = Self::at(2025, 6, 10, 21);
        let found = self.new_serial(count_p, tc);
        let sc = self.make_count(
            Self::at(2025, 6, 10, 14),
            main,
            count_p,
            vec![(bin, vec![missing, kept], vec![kept, found])],
            "completed",
            Some(tc),
        );
        // Its stock effect is in the inventory through the documents; only the adjustment is made here.
        let before = self.pools.clone();
        self.apply_count(sc, tc);
        self.pools = before;
        self.queue.retain(|Reverse((_, _, a))| !matches!(a, Arrival::Serial { sid, .. } if *sid == found));
        let sc = GenRef::Sc(self.scs[sc].id);
        story("count_missing", missing, count_p, vec![GenRef::Po(self.pos[po].id), sc], None);
        story("count_found", found, count_p, vec![sc], Some((main, bin)));
        out
    }

    // -----------------------------------------------------------------------------------------
    // Finishing: numbers, inventory, timestamps

    fn finish(mut self, planted: Vec<(&'static str, PlantedStory)>) -> Generated {
        // Numbers follow the document dates, like a company that numbers as it goes.
        self.sos.sort_by_key(|d| d.order_date);
        self.pos.sort_by_key(|d| d.order_date);
        self.sas.sort_by_key(|d| d.date);
        self.sts.sort_by_key(|d| d.transfer_date);
        for (i, d) in self.sos.iter_mut().enumerate() {
            d.number = format!("SO-{:06}", i + 1);
        }
        for (i, d) in self.pos.iter_mut().enumerate() {
            d.number = format!("PO-{:06}", i + 1);
        }
        for (i, d) in self.sas.iter_mut().enumerate() {
            d.number = format!("SA-{:06}", i + 1);
        }
        for (i, d) in self.sts.iter_mut().enumerate() {
            d.number = format!("ST-{:06}", i + 1);
        }
        self.mos.sort_by_key(|d| d.order_date);
        self.scs.sort_by_key(|d| d.started_date.or(d.completed_date));
        for (i, d) in self.mos.iter_mut().enumerate() {
            d.number = format!("MO-{:06}", i + 1);
        }
        for (i, d) in self.scs.iter_mut().enumerate() {
            d.number = format!("SC-{:06}", i + 1);
        }
        // An adjustment a count made names it, as inFlow's own would.
        let count_numbers: HashMap<Uuid, String> = self.scs.iter().map(|c| (c.id, c.number.clone())).collect();
        for sa in self.sas.iter_mut() {
            if let Some(number) = sa.from_count.and_then(|c| count_numbers.get(&c)) {
                sa.remarks = format!("Stock count {number}");
            }
        }

        let mut docs = Docs {
            sales_orders: self.sos.drain(..).map(|d| (d.id, d)).collect(),
            purchase_orders: self.pos.drain(..).map(|d| (d.id, d)).collect(),
            adjustments: self.sas.drain(..).map(|d| (d.id, d)).collect(),
            transfers: self.sts.drain(..).map(|d| (d.id, d)).collect(),
            manufacturing_orders: self.mos.drain(..).map(|d| (d.id, d)).collect(),
            counts: self.scs.drain(..).map(|d| (d.id, d)).collect(),
        };

        let mut inv = Inventory::default();
        let mut moves = all_moves(&docs);
        moves.append(&mut self.off_document);
        {
            let seq = &mut self.seq;
            let rng = &mut self.rng;
            inv.apply(
                &moves,
                1,
                |d| {
                    *seq += 1;
                    (((d.timestamp() - EPOCH_2020).max(0) as u64) << 24) | (*seq & 0xFF_FFFF)
                },
                || uuid::Builder::from_random_bytes(rng.random()).into_uuid(),
            );
        }

        // One rowversion counter for everything, in write order.
        let base: u64 = 0x10000 + self.rng.random_range(0..0x8000);
        let mut stamps: Vec<&mut u64> = Vec::new();
        for l in &mut self.cat.locations {
            stamps.push(&mut l.ts);
        }
        for p in &mut self.cat.products {
            stamps.push(&mut p.ts);
        }
        for d in docs.sales_orders.values_mut() {
            stamps.push(&mut d.ts);
            stamps.extend(d.lines.iter_mut().map(|l| &mut l.ts));
            stamps.extend(d.pick_lines.iter_mut().map(|l| &mut l.ts));
            stamps.extend(d.pack_lines.iter_mut().map(|l| &mut l.ts));
            stamps.extend(d.ship_lines.iter_mut().map(|l| &mut l.ts));
            stamps.extend(d.restock_lines.iter_mut().map(|l| &mut l.ts));
        }
        for d in docs.purchase_orders.values_mut() {
            stamps.push(&mut d.ts);
            stamps.extend(d.lines.iter_mut().map(|l| &mut l.ts));
            stamps.extend(d.receive_lines.iter_mut().map(|l| &mut l.ts));
            stamps.extend(d.unstock_lines.iter_mut().map(|l| &mut l.ts));
        }
        for d in docs.adjustments.values_mut() {
            stamps.push(&mut d.ts);
            stamps.extend(d.lines.iter_mut().map(|l| &mut l.ts));
        }
        for d in docs.transfers.values_mut() {
            stamps.push(&mut d.ts);
            stamps.extend(d.lines.iter_mut().map(|l| &mut l.ts));
        }
        fn tree<'l>(lines: &'l mut [MoLine], stamps: &mut Vec<&'l mut u64>) {
            for l in lines {
                stamps.push(&mut l.ts);
                tree(&mut l.children, stamps);
            }
        }
        for d in docs.manufacturing_orders.values_mut() {
            stamps.push(&mut d.ts);
            tree(&mut d.lines, &mut stamps);
            stamps.extend(d.pick_lines.iter_mut().map(|l| &mut l.ts));
            stamps.extend(d.put_lines.iter_mut().map(|l| &mut l.ts));
            stamps.extend(d.pick_matchings.iter_mut().map(|l| &mut l.ts));
        }
        for d in docs.counts.values_mut() {
            stamps.push(&mut d.ts);
            for sheet in &mut d.sheets {
                stamps.push(&mut sheet.ts);
                stamps.extend(sheet.lines.iter_mut().map(|l| &mut l.ts));
            }
        }
        stamps.extend(inv.rows_mut().map(|r| &mut r.ts));
        stamps.sort_unstable_by_key(|s| **s);
        let n = stamps.len() as u64;
        for (i, s) in stamps.into_iter().enumerate() {
            *s = base + i as u64;
        }
        let rowversion = base + n;

        let scenario = self.scenario(&docs, planted);
        Generated { cat: self.cat, docs, inv, rowversion, scenario, rng: self.rng }
    }

    fn scenario(&self, docs: &Docs, planted: Vec<(&'static str, PlantedStory)>) -> Scenario {
        let mut stories: HashMap<&'static str, SerialStory> = HashMap::new();
        for (name, p) in planted {
            let refs = p.docs.iter().filter_map(|r| self.doc_ref(docs, *r)).collect();
            stories.insert(
                name,
                SerialStory {
                    serial: self.cat.serials.get(p.serial).to_string(),
                    product_id: self.cat.product(p.product).id.hyphenated().to_string(),
                    documents: refs,
                    on_hand: p.on_hand.map(|(l, s)| OnHand {
                        location_id: self.cat.location(l).id.hyphenated().to_string(),
                        sublocation: self.cat.sublocations.get(s).to_string(),
                    }),
                },
            );
        }
        let mut take = |n: &str| stories.remove(n);
        let empty =
            || SerialStory { serial: String::new(), product_id: String::new(), documents: Vec::new(), on_hand: None };
        let full_lifecycle = take("full_lifecycle").unwrap_or_else(empty);
        let vendor_return = take("vendor_return").unwrap_or_else(empty);
        let adjusted_out = take("adjusted_out").unwrap_or_else(empty);
        let on_open_transfer = take("on_open_transfer").unwrap_or_else(empty);
        let in_transit = take("in_transit").unwrap_or_else(empty);
        let two_products = match (take("two_products_a"), take("two_products_b")) {
            (Some(a), Some(b)) => Some(TwoProducts {
                serial: a.serial.clone(),
                product_ids: [a.product_id.clone(), b.product_id.clone()],
                stories: [a, b],
            }),
            _ => None,
        };
        let unit = take("build_unit").unwrap_or_else(empty);
        let customer_id = unit
            .documents
            .iter()
            .filter(|d| d.endpoint == "sales-orders")
            .find_map(|d| docs.sales_orders.get(&Uuid::parse_str(&d.id).ok()?))
            .map(|so| self.cat.customers[so.customer as usize].id.hyphenated().to_string())
            .unwrap_or_default();
        let mut scenario = Scenario {
            full_lifecycle,
            vendor_return,
            adjusted_out,
            on_open_transfer,
            in_transit,
            two_products,
            sold_twice: take("sold_twice"),
            adjusted_out_then_sold: take("adjusted_out_then_sold"),
            shipped_never_received: take("shipped_never_received"),
            never_in_documents: take("never_in_documents"),
            on_hand_without_receipt: take("on_hand_without_receipt"),
            gone_but_history_on_hand: take("gone_but_history_on_hand"),
            different_location: take("different_location"),
            on_hand_in_two_locations: take("on_hand_in_two_locations"),
            build_chain: BuildChain {
                component: take("build_component").unwrap_or_else(empty),
                subassembly: take("build_subassembly").unwrap_or_else(empty),
                customer_id,
                unit,
            },
            build_in_progress_component: take("build_in_progress_component").unwrap_or_else(empty),
            build_in_progress_unit: take("build_in_progress_unit").unwrap_or_else(empty),
            count_missing: take("count_missing").unwrap_or_else(empty),
            count_found: take("count_found").unwrap_or_else(empty),
            in_twice: take("in_twice"),
            moved_from_elsewhere: take("moved_from_elsewhere"),
            stuck_in_transit: take("stuck_in_transit"),
            returned_never_sold: take("returned_never_sold"),
            anomalies: Vec::new(),
        };
        scenario.anomalies = planted_anomalies(&scenario);
        scenario
    }

    /// The endpoint, id and final number of a planted document.
    fn doc_ref(&self, docs: &Docs, r: GenRef) -> Option<DocRef> {
        let (endpoint, id, number) = match r {
            GenRef::So(id) => ("sales-orders", id, docs.sales_orders.get(&id)?.number.clone()),
            GenRef::Po(id) => ("purchase-orders", id, docs.purchase_orders.get(&id)?.number.clone()),
            GenRef::Sa(id) => ("stock-adjustments", id, docs.adjustments.get(&id)?.number.clone()),
            GenRef::St(id) => ("stock-transfers", id, docs.transfers.get(&id)?.number.clone()),
            GenRef::Mo(id) => ("manufacturing-orders", id, docs.manufacturing_orders.get(&id)?.number.clone()),
            GenRef::Sc(id) => ("stock-counts", id, docs.counts.get(&id)?.number.clone()),
        };
        Some(DocRef { endpoint: endpoint.to_string(), id: id.hyphenated().to_string(), number })
    }
}

/// What `audit anomalies` finds in the planted stories, by how each was planted (their
/// documents are in time order, see `plant`).
/// A stock disagreement's evidence is the event that set the serial's status (`serial_current`):
/// for a shipped order, `shipped`.
fn planted_anomalies(sc: &Scenario) -> Vec<PlantedAnomaly> {
    type Event<'a> = Option<(&'a str, &'a DocRef)>;
    fn found(kind: &str, story: &SerialStory, event: Event, earlier: Event) -> PlantedAnomaly {
        let (kind, detail) = match kind.strip_prefix("stock:") {
            Some(reconcile_kind) => ("history_and_stock_disagree", Some(reconcile_kind.to_string())),
            None => (kind, None),
        };
        PlantedAnomaly {
            kind: kind.to_string(),
            serial: story.serial.clone(),
            product_id: story.product_id.clone(),
            event_type: event.map(|e| e.0.to_string()),
            document: event.map(|e| e.1.clone()),
            earlier_event_type: earlier.map(|e| e.0.to_string()),
            earlier_document: earlier.map(|e| e.1.clone()),
            detail,
        }
    }
    let doc = |s: &SerialStory, i: usize| s.documents[i].clone();
    let mut out = Vec::new();
    if let Some(s) = &sc.sold_twice {
        // PO, then two shipped orders: the second order's pick follows the first's.
        let (first, second) = (doc(s, 1), doc(s, 2));
        out.push(found("out_twice", s, Some(("picked", &second)), Some(("picked", &first))));
        out.push(found("sold_twice", s, Some(("sold", &second)), Some(("shipped", &first))));
        out.push(found("stock:negative_on_hand", s, Some(("shipped", &second)), None));
    }
    if let Some(s) = &sc.adjusted_out_then_sold {
        let (adjustment, order) = (doc(s, 1), doc(s, 2));
        out.push(found("out_twice", s, Some(("picked", &order)), Some(("adjusted_out", &adjustment))));
        out.push(found("stock:negative_on_hand", s, Some(("shipped", &order)), None));
    }
    if let Some(s) = &sc.shipped_never_received {
        let order = doc(s, 0);
        out.push(found("appeared_from_nowhere", s, Some(("picked", &order)), None));
        out.push(found("stock:negative_on_hand", s, Some(("shipped", &order)), None));
    }
    if let Some(tp) = &sc.two_products {
        // Each product's history is flagged, beside the other product's first event; the
        // detail names the other product.
        let [a, b] = &tp.stories;
        let (receipt_a, receipt_b) = (doc(a, 0), doc(b, 0));
        for (this, receipt, other, other_receipt) in [(a, &receipt_a, b, &receipt_b), (b, &receipt_b, a, &receipt_a)] {
            let mut f =
                found("one_serial_two_products", this, Some(("received", receipt)), Some(("received", other_receipt)));
            f.detail = Some(other.product_id.clone());
            out.push(f);
        }
    }
    if let Some(s) = &sc.never_in_documents {
        out.push(found("stock:never_in_documents", s, None, None));
    }
    if let Some(s) = &sc.on_hand_without_receipt {
        out.push(found("stock:on_hand_without_receipt", s, Some(("sold", &doc(s, 0))), None));
    }
    for (story, kind) in [
        (&sc.gone_but_history_on_hand, "stock:gone_but_history_on_hand"),
        (&sc.different_location, "stock:different_location"),
        (&sc.on_hand_in_two_locations, "stock:on_hand_in_two_locations"),
    ] {
        if let Some(s) = story {
            out.push(found(kind, s, Some(("received", &doc(s, 0))), None));
        }
    }
    if let Some(s) = &sc.in_twice {
        out.push(found("in_twice", s, Some(("received", &doc(s, 1))), Some(("received", &doc(s, 0)))));
    }
    if let Some(s) = &sc.moved_from_elsewhere {
        out.push(found("moved_from_elsewhere", s, Some(("picked", &doc(s, 1))), Some(("received", &doc(s, 0)))));
    }
    if let Some(s) = &sc.stuck_in_transit {
        out.push(found("stuck_in_transit", s, Some(("transfer_sent", &doc(s, 1))), None));
    }
    if let Some(s) = &sc.returned_never_sold {
        out.push(found("returned_never_sold", s, Some(("customer_return", &doc(s, 0))), None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_seeds_and_tiny_scales_generate() {
        for seed in 0..25 {
            let g = generate(seed, Scale::Small, seed % 2 == 0);
            assert!(g.docs.sales_orders.len() >= 160);
            assert!((4..=6).contains(&g.cat.locations.len()));
        }
        for n in [1, 2, 10] {
            let g = generate(3, Scale::Orders(n), true);
            assert!(g.docs.sales_orders.len() >= n);
        }
    }

    #[test]
    fn only_transfers_sent_in_the_last_two_weeks_are_on_the_way() {
        for faults in [false, true] {
            let g = generate(7, Scale::Orders(3000), faults);
            let on_the_way: Vec<i64> = g
                .docs
                .transfers
                .values()
                .filter(|t| t.status == "inTransit" && !t.is_cancelled)
                .map(|t| t.sent_date.expect("sent").timestamp())
                .collect();
            let stuck = on_the_way.iter().filter(|&&t| t < END - TRANSIT_DAYS * DAY).count();
            // With faults, the one planted stuck transfer.
            assert_eq!(stuck, usize::from(faults), "faults {faults}");
            assert!(!on_the_way.is_empty(), "the planted in_transit story is on the way");
            assert_eq!(g.scenario.two_products.is_some(), faults);
            assert_eq!(g.scenario.anomalies.is_empty(), !faults);
        }
    }

    #[test]
    fn period_bounds_are_the_documented_dates() {
        assert_eq!(Gen::at(2024, 1, 1, 0), START);
        assert_eq!(Gen::at(2026, 10, 31, 0) + 86_399, END);
    }

    #[test]
    fn business_hours_keep_order_and_stay_in_the_day() {
        let g = Gen::new(1, &Plan::for_scale(Scale::Small));
        let mut last = i64::MIN;
        for t in (START..START + 3 * DAY).step_by(977) {
            let b = g.biz(t, 0);
            assert!(b >= last, "monotone");
            last = b;
            let local = g.dt(b, 0);
            let h = chrono::Timelike::hour(&local);
            assert!((8..18).contains(&h), "{local}");
        }
    }

    #[test]
    fn serial_formats_differ_and_do_not_collide() {
        let mut g = Gen::new(1, &Plan::for_scale(Scale::Small));
        let mut seen = std::collections::HashSet::new();
        let mut shapes = std::collections::HashSet::new();
        for &p in &g.serialized.clone() {
            for _ in 0..50 {
                let s = g.new_serial(p, START);
                let text = g.cat.serials.get(s).to_string();
                shapes.insert(g.serial_format[p as usize]);
                assert!(seen.insert((p, text)), "duplicate serial");
            }
        }
        assert_eq!(shapes.len(), 4);
        let sn = g.new_serial(g.serialized[0], START);
        assert!(g.cat.serials.get(sn).starts_with("SN-"));
    }
}
