// k6 load test for a tokengate deployment: an open-model, fixed request rate (constant-arrival-rate),
// so latency percentiles are not flattered by coordinated omission the way a closed-loop tool's are.
//
//   BASE_URL=http://127.0.0.1:8080 k6 run loadtest/k6/proxy.js
//   BASE_URL=https://gw.example.com REQ_PATH=/api/orders RATE=2000 DURATION=5m P99_MS=25 \
//     TOKEN="$(cat token.jwt)" k6 run loadtest/k6/proxy.js
//
// Environment (all optional except BASE_URL):
//   BASE_URL        gateway base URL, no trailing slash                    (required)
//   REQ_PATH        path requested on every iteration                      (default "/")
//   RATE            requests per second to start                           (default 1000)
//   DURATION        how long to hold the rate                              (default "60s")
//   PRE_VUS/MAX_VUS VUs preallocated / allowed; raise MAX_VUS if k6 reports dropped_iterations
//                                                                          (default 50 / 500)
//   P99_MS          threshold on p99 of http_req_duration, in ms           (default 50)
//   MAX_ERROR_RATE  threshold on the share of failed requests (status >= 400 or network error)
//                                                                          (default 0.001)
//   EXPECT_STATUS   status the check expects                               (default 200)
//   TOKEN           if set, sent as "Authorization: Bearer $TOKEN"
//
// k6 exits non-zero when a threshold fails, so this can gate a CI or release step.
// Run k6 on a different machine (or cores) than the gateway: a load generator sharing the gateway's
// CPU measures the scheduler, not the gateway.

import http from 'k6/http';
import { check, fail } from 'k6';

const BASE_URL = (__ENV.BASE_URL || '').replace(/\/+$/, '');
const REQ_PATH = __ENV.REQ_PATH || '/';
const RATE = parseInt(__ENV.RATE || '1000', 10);
const DURATION = __ENV.DURATION || '60s';
const PRE_VUS = parseInt(__ENV.PRE_VUS || '50', 10);
const MAX_VUS = parseInt(__ENV.MAX_VUS || '500', 10);
const P99_MS = parseFloat(__ENV.P99_MS || '50');
const MAX_ERROR_RATE = parseFloat(__ENV.MAX_ERROR_RATE || '0.001');
const EXPECT_STATUS = parseInt(__ENV.EXPECT_STATUS || '200', 10);

const headers = {};
if (__ENV.TOKEN) {
  headers['Authorization'] = `Bearer ${__ENV.TOKEN}`;
}
const params = { headers, tags: { name: 'proxy' } };

export const options = {
  discardResponseBodies: true,
  scenarios: {
    proxy: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: PRE_VUS,
      maxVUs: MAX_VUS,
    },
  },
  thresholds: {
    // Latency SLO at the offered rate.
    'http_req_duration{scenario:proxy}': [`p(99)<${P99_MS}`],
    // Errors: transport failures and status >= 400.
    'http_req_failed{scenario:proxy}': [`rate<${MAX_ERROR_RATE}`],
    // The status check (catches e.g. a 3xx where 200 was expected).
    checks: [`rate>${1 - MAX_ERROR_RATE}`],
    // The generator must actually hold the rate: iterations dropped for lack of VUs mean the
    // measured percentiles are for a lower rate than asked. Allow at most 1% of the rate.
    dropped_iterations: [`rate<${Math.max(1, RATE * 0.01)}`],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'p(99.9)', 'max'],
};

export function setup() {
  if (!BASE_URL) {
    fail('set BASE_URL, e.g. BASE_URL=http://127.0.0.1:8080');
  }
  const res = http.get(`${BASE_URL}${REQ_PATH}`, params);
  if (res.status !== EXPECT_STATUS) {
    fail(`preflight ${BASE_URL}${REQ_PATH} answered ${res.status}, expected ${EXPECT_STATUS}`);
  }
}

export default function () {
  const res = http.get(`${BASE_URL}${REQ_PATH}`, params);
  check(res, { [`status is ${EXPECT_STATUS}`]: (r) => r.status === EXPECT_STATUS });
}
