//! What the line types have in common, so each document module says only what differs.

use super::{Builder, EventType, LineRef, Occurrence, is_negative};
use crate::inflow::model::*;

/// Any line: its collection, id and version.
pub(crate) trait Line {
    const COLLECTION: &'static str;
    fn id(&self) -> Option<&str>;
    fn timestamp(&self) -> Option<&str>;
}

/// A line that carries serials.
pub(crate) trait SerialLine: Line {
    fn product_id(&self) -> Option<&str>;
    fn quantity(&self) -> &Quantity;

    fn line_ref(&self, index: usize) -> LineRef<'_> {
        LineRef {
            collection: Self::COLLECTION,
            index,
            id: self.id(),
            product_id: self.product_id(),
            quantity: self.quantity(),
        }
    }
}

/// A line that moves stock at its own location and sublocation, on its own date: pick, restock,
/// receive and unstock lines.
pub(crate) trait PlacedLine: SerialLine {
    const DATE_FIELD: &'static str;
    fn location_id(&self) -> Option<&str>;
    fn sublocation(&self) -> Option<&str>;
    fn date(&self) -> Option<&str>;
}

/// An order line: goods ordered, or returned when its quantity is negative.
pub(crate) trait OrderLine: SerialLine {
    fn return_date(&self) -> Option<&str>;
}

macro_rules! line {
    ($ty:ty, $collection:literal, $id:ident) => {
        impl Line for $ty {
            const COLLECTION: &'static str = $collection;
            fn id(&self) -> Option<&str> {
                self.$id.as_deref()
            }
            fn timestamp(&self) -> Option<&str> {
                self.timestamp.as_deref()
            }
        }
    };
    ($ty:ty, $collection:literal, $id:ident, serials) => {
        line!($ty, $collection, $id);
        impl SerialLine for $ty {
            fn product_id(&self) -> Option<&str> {
                self.product_id.as_deref()
            }
            fn quantity(&self) -> &Quantity {
                &self.quantity
            }
        }
    };
    ($ty:ty, $collection:literal, $id:ident, placed $date_field:literal $date:ident) => {
        line!($ty, $collection, $id, serials);
        impl PlacedLine for $ty {
            const DATE_FIELD: &'static str = $date_field;
            fn location_id(&self) -> Option<&str> {
                self.location_id.as_deref()
            }
            fn sublocation(&self) -> Option<&str> {
                self.sublocation.as_deref()
            }
            fn date(&self) -> Option<&str> {
                self.$date.as_deref()
            }
        }
    };
    ($ty:ty, $collection:literal, $id:ident, order) => {
        line!($ty, $collection, $id, serials);
        impl OrderLine for $ty {
            fn return_date(&self) -> Option<&str> {
                self.return_date.as_deref()
            }
        }
    };
}

line!(SalesOrderLine, "lines", sales_order_line_id, order);
line!(SalesOrderPickLine, "pickLines", sales_order_pick_line_id, placed "pickDate" pick_date);
line!(SalesOrderPackLine, "packLines", sales_order_pack_line_id, serials);
line!(SalesOrderShipLine, "shipLines", sales_order_ship_line_id);
line!(SalesOrderRestockLine, "restockLines", sales_order_restock_line_id, placed "restockDate" restock_date);
line!(PurchaseOrderLine, "lines", purchase_order_line_id, order);
line!(PurchaseOrderReceiveLine, "receiveLines", purchase_order_receive_line_id, placed "receiveDate" receive_date);
line!(PurchaseOrderUnstockLine, "unstockLines", purchase_order_unstock_line_id, placed "unstockDate" unstock_date);
line!(StockAdjustmentLine, "lines", stock_adjustment_line_id, serials);
line!(StockTransferLine, "lines", stock_transfer_line_id, serials);
line!(ManufacturingOrderLine, "lines", manufacturing_order_line_id, serials);
line!(ManufacturingOrderPickLine, "pickLines", manufacturing_order_pick_line_id, placed "pickDate" pick_date);
line!(ManufacturingOrderPutLine, "putLines", manufacturing_order_put_line_id, serials);
line!(ManufacturingOrderPickMatching, "pickMatchings", manufacturing_order_pick_matching_id);
line!(CountSheet, "sheets", count_sheet_id);
line!(CountSheetLine, "sheets.lines", count_sheet_line_id);

impl Builder {
    /// Records every line's version (with or without serials): any change is noticed.
    pub fn stamp_all<L: Line>(&mut self, lines: &[L]) {
        for (i, l) in lines.iter().enumerate() {
            self.stamp(L::COLLECTION, i, l.id(), l.timestamp());
        }
    }

    /// Records the serials of lines that move stock where and when the line says.
    pub fn placed<L: PlacedLine>(&mut self, lines: &[L], event_type: EventType, quantity_delta: i16) {
        for (index, l) in lines.iter().enumerate() {
            let line = l.line_ref(index);
            let serials = self.serials(&line);
            let occurred_at = self.date(L::DATE_FIELD, l.date(), Some(&line));
            let what = Occurrence {
                event_type,
                quantity_delta,
                location_id: l.location_id(),
                sublocation: l.sublocation(),
                occurred_at,
            };
            self.emit(&line, &serials, what);
        }
    }

    /// Records the serials of order lines: `ordered` (or sold, quoted) for positive quantities,
    /// `returned` for negative ones on their return date, else the order date; at the order's
    /// location, with no stock effect.
    pub fn order_lines<L: OrderLine>(
        &mut self,
        lines: &[L],
        ordered: EventType,
        returned: EventType,
        location_id: Option<&str>,
        order_date: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        for (index, l) in lines.iter().enumerate() {
            let line = l.line_ref(index);
            let serials = self.serials(&line);
            if serials.is_empty() {
                continue;
            }
            let (event_type, occurred_at) = if is_negative(l.quantity()) {
                (returned, self.date("returnDate", l.return_date(), Some(&line)).or(order_date))
            } else {
                (ordered, order_date)
            };
            let what = Occurrence { event_type, quantity_delta: 0, location_id, sublocation: None, occurred_at };
            self.emit(&line, &serials, what);
        }
    }
}
