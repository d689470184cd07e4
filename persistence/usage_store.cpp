// SQL for api_key_usage: a whole batch in one statement, summed into the stored counters.
#include "persistence/usage_store.hpp"

#include <pqxx/transaction>

#include "persistence/db_pool.hpp"
#include "persistence/pg_support.hpp"

namespace datahub::persistence {

usage_store::usage_store(std::shared_ptr<db_pool> pool) : pool_(std::move(pool)) {}

void usage_store::add(std::vector<usage_row> rows, std::function<void(db_result<done_t>)> done) {
  pool_->query<done_t>(
      "upsert", "api_key_usage",
      [rows = std::move(rows)](pqxx::connection& conn) {
        if (rows.empty())
          return done_t{};
        std::vector<std::string> key_ids;
        std::vector<int64_t> minutes, requests, s2, s3, s4, s5, limited, in, out;
        for (const auto& r : rows) {
          key_ids.push_back(r.key_id);
          minutes.push_back(core::to_unix_ms(r.minute));
          requests.push_back(r.requests);
          s2.push_back(r.status_2xx);
          s3.push_back(r.status_3xx);
          s4.push_back(r.status_4xx);
          s5.push_back(r.status_5xx);
          limited.push_back(r.rate_limited);
          in.push_back(r.bytes_in);
          out.push_back(r.bytes_out);
        }
        pqxx::work tx(conn);
        // The batch is grouped first (an upsert may not touch one row twice) and sorted, so
        // instances flushing at the same moment lock rows in the same order.
        tx.exec_params(
            "INSERT INTO api_key_usage (key_id, minute, requests, status_2xx, status_3xx,"
            " status_4xx, status_5xx, rate_limited, bytes_in, bytes_out)"
            " SELECT key_id, date_trunc('minute', timestamptz 'epoch' + ms * interval '1 ms'),"
            " sum(rq), sum(s2), sum(s3), sum(s4), sum(s5), sum(rl), sum(bi), sum(bo)"
            " FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[],"
            " $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])"
            " AS b(key_id, ms, rq, s2, s3, s4, s5, rl, bi, bo)"
            " GROUP BY 1, 2 ORDER BY 1, 2"
            " ON CONFLICT (key_id, minute) DO UPDATE SET"
            " requests = api_key_usage.requests + excluded.requests,"
            " status_2xx = api_key_usage.status_2xx + excluded.status_2xx,"
            " status_3xx = api_key_usage.status_3xx + excluded.status_3xx,"
            " status_4xx = api_key_usage.status_4xx + excluded.status_4xx,"
            " status_5xx = api_key_usage.status_5xx + excluded.status_5xx,"
            " rate_limited = api_key_usage.rate_limited + excluded.rate_limited,"
            " bytes_in = api_key_usage.bytes_in + excluded.bytes_in,"
            " bytes_out = api_key_usage.bytes_out + excluded.bytes_out",
            text_array_literal(key_ids), int_array_literal(minutes), int_array_literal(requests),
            int_array_literal(s2), int_array_literal(s3), int_array_literal(s4),
            int_array_literal(s5), int_array_literal(limited), int_array_literal(in),
            int_array_literal(out));
        // Only keys whose last_used_at moves are touched; they are locked in id order first
        // for the same reason as above.
        tx.exec_params(
            "UPDATE api_keys k SET last_used_at = greatest(k.last_used_at, v.latest)"
            " FROM (SELECT k2.id, u.latest FROM api_keys k2"
            "   JOIN (SELECT key_id, date_trunc('minute', max(timestamptz 'epoch'"
            "           + ms * interval '1 ms')) AS latest"
            "         FROM unnest($1::text[], $2::bigint[]) AS b(key_id, ms) GROUP BY key_id) u"
            "     ON u.key_id = k2.id"
            "   WHERE k2.last_used_at IS NULL OR k2.last_used_at < u.latest"
            "   ORDER BY k2.id FOR NO KEY UPDATE OF k2) v"
            " WHERE k.id = v.id",
            text_array_literal(key_ids), int_array_literal(minutes));
        tx.commit();
        return done_t{};
      },
      std::move(done));
}

}  // namespace datahub::persistence
