-- A customer's subscriptions, paged by id (GET /v1/customers/{customerId}/subscriptions).
CREATE INDEX subscriptions_customer_idx ON subscriptions (customer_id, id);
