# The portal's English messages. Every id here is also in zh-CN.ftl (a test checks).
brand = suanli · Computing Power Network
skip-to-content = Skip to content
footer = suanli — one network of the city's computing centers. Times are China Standard Time (UTC+8); money is in yuan.
nav-label = Main
nav-network = Network
nav-submit = Submit
nav-jobs = My jobs
nav-queue = Jobs
nav-bills = Bills
nav-centers = Centers
nav-audit = Audit log

role-operator = operator
role-supervisor = supervisor
role-tenant-admin = tenant admin
role-user = user
role-site = site agent

signin-title = Sign in
signin-intro = Sign in with the API token you were given (it starts with "sl_"). The portal keeps it on the server for this session only.
signin-token = Token
signin-button = Sign in
signin-bad-token = That token is not valid (unknown, revoked or expired).
signout-button = Sign out

error-title = Something went wrong
error-csrf = This form has expired or did not come from this portal. Go back, reload the page and try again.
error-site-token = Site agent tokens cannot sign in to the portal.
error-not-found = There is no such page, or you may not see it.
error-forbidden = This page is not for your role.
error-unreachable = The hub cannot be reached just now. Try again in a moment.
error-protocol = The hub gave an answer the portal does not understand.
error-home = Back to the network

dur-s = { $s } s
dur-m = { $m } min
dur-hm = { $h } h { $m } min

state-submitted = submitted
state-queued = queued
state-placed = placed
state-running = running
state-succeeded = succeeded
state-failed = failed
state-cancelled = cancelled
state-timed-out = timed out

center-online = online
center-offline = offline
center-draining = draining
center-drained = drained
center-unknown = unknown

col-id = ID
col-name = Name
col-tenant = Tenant
col-state = State
col-center = Center
col-city = City
col-status = Status
col-chip = Chip
col-chips = Chips
col-free-cards = Free cards
col-price = Price per card-hour
col-cost-total = Whole job
col-expected-start = Expected start
col-submitted = Submitted
col-started = Started
col-ended = Ended
col-exit = Exit code
col-reason = Why
col-walltime = Wall-time limit
col-card-hours = Card-hours
col-gross = Gross
col-subsidy = Voucher subsidy
col-payable = Payable
col-line = Line
col-job = Job
col-unit-price = Unit price
col-heartbeat = Last heartbeat
col-actions = Actions
col-time = Time
col-principal = Who
col-action = Action
col-target = Target
col-outcome = Outcome

network-title = The computing power network
network-summary = { $centers } centers ({ $online } online), { $cards } cards, { $free } free now.
network-table = Centers, their chips, free cards and list prices (before vouchers)
network-map = Centers of the Greater Bay Area
network-map-caption = Each circle is a city with centers; its size grows with the cards installed; green while a center there is online.
network-elsewhere = Elsewhere:
network-no-pools = No chips reported yet.

jobs-title = My jobs
queue-title = Jobs
jobs-filter-state = State
jobs-all = All
jobs-active = Not ended
jobs-filter-button = Show
jobs-none = No jobs here yet.
jobs-next-page = Older →
jobs-bad-state = "{ $state }" is not a job state.

job-title = Job { $id }: { $name }
job-nodes = node(s)
job-cancel = Cancel this job
job-placement = Where it runs, and why
job-placed = Placed at { $center } on { $sku } at { $at } (attempt { $attempt }).
job-rejected = Centers that could not take it
job-history = Timeline
job-logs = Logs of attempt { $attempt }
job-command = Command

submit-title = Submit a job
submit-name = Name
submit-chip = Chip
submit-any-chip = Any chip
submit-by-vendor = By vendor
submit-by-sku = By model
submit-cards = Cards per node
submit-nodes = Nodes
submit-stack = Software stack
submit-any-stack = Any
submit-walltime = Wall-time limit
submit-walltime-help = e.g. 30m, 2h, 1-00:00:00; a bare number is minutes.
submit-max-price = Price cap (yuan per card-hour)
submit-command = Command
submit-script = Or paste an #SBATCH script
submit-script-help = When a script is given, its #SBATCH lines set the job and the fields above are not used.
submit-quote = Quote
submit-button = Submit
submit-need-number = a whole number is needed
submit-bad-field = { $field }: { $why }
quote-title = Quote
quote-intro = For the whole wall-time limit ({ $walltime }), best first. Nothing has been submitted yet.
quote-none = No center can take this job now.

bills-title = Bills
bills-month = Bill of { $tenant } for { $month }
bills-tenant = Tenant
bills-month-field = Month
bills-show = Show
bills-csv = Download as CSV
bills-none = No billed usage this month.
bills-price-row = price row

centers-title = Centers
centers-drain = Drain
centers-undrain = Undrain
centers-drain-help = A drained center takes no new jobs; jobs running there finish.

audit-title = Audit log
audit-intro = Every write and every refusal, newest last. Verify the whole log offline with "suanli audit export" and "suanli audit verify".
audit-allowed = allowed
audit-denied = denied
