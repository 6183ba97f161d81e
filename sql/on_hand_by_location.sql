-- Serials on hand per location, sublocation and product, per the recorded history.
-- To list the serials themselves: SELECT * FROM serial_current WHERE status = 'in_stock'.
-- Run: audit sql --query on_hand_by_location
SELECT location_name,
       location_id,
       sublocation,
       product_name,
       COUNT(*) AS serials
FROM serial_current
WHERE status = 'in_stock'
GROUP BY location_name, location_id, sublocation, product_name
ORDER BY location_name, sublocation, product_name;
