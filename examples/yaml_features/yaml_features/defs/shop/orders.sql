-- The orders of one daily partition ($start, $end: its window, UTC); orders.csv sits beside this file.
SELECT order_id, ts, customer, amount, returned
FROM read_csv('orders.csv', header = true,
              columns = {'order_id': 'VARCHAR', 'ts': 'TIMESTAMPTZ', 'customer': 'VARCHAR',
                         'amount': 'DOUBLE', 'returned': 'BOOLEAN'})
WHERE ts >= $start AND ts < $end
ORDER BY order_id
