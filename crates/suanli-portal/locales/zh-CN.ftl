# 门户的中文消息。这里的每个 id 也在 en.ftl 中（有测试检查）。
brand = 算力 · 城市算力网
skip-to-content = 跳到正文
footer = 算力——城市各算力中心的一张网。时间为北京时间（UTC+8），金额单位为元。
nav-label = 主导航
nav-network = 算力网
nav-submit = 提交作业
nav-jobs = 我的作业
nav-queue = 作业
nav-bills = 账单
nav-centers = 算力中心
nav-audit = 审计日志

role-operator = 运营方
role-supervisor = 监管方
role-tenant-admin = 租户管理员
role-user = 用户
role-site = 站点代理

signin-title = 登录
signin-intro = 请使用分配给您的 API 令牌登录（以“sl_”开头）。门户只在本次会话中将其保存在服务器端。
signin-token = 令牌
signin-button = 登录
signin-bad-token = 该令牌无效（不存在、已吊销或已过期）。
signout-button = 退出

error-title = 出错了
error-csrf = 此表单已过期或并非来自本门户。请返回、刷新页面后重试。
error-site-token = 站点代理令牌不能登录门户。
error-not-found = 没有这个页面，或您无权查看。
error-forbidden = 此页面不面向您的角色。
error-unreachable = 暂时无法连接调度中枢，请稍后重试。
error-protocol = 调度中枢的回答门户无法识别。
error-home = 返回算力网

dur-s = { $s }秒
dur-m = { $m }分钟
dur-hm = { $h }小时{ $m }分

state-submitted = 已提交
state-queued = 排队中
state-placed = 已分配
state-running = 运行中
state-succeeded = 已成功
state-failed = 已失败
state-cancelled = 已取消
state-timed-out = 已超时

center-online = 在线
center-offline = 离线
center-draining = 停止中
center-drained = 已停止接收

col-id = 编号
col-name = 名称
col-tenant = 租户
col-state = 状态
col-center = 算力中心
col-city = 城市
col-status = 状态
col-chip = 芯片
col-chips = 芯片
col-free-cards = 空闲卡数
col-price = 每卡时价格
col-cost-total = 作业总价
col-expected-start = 预计开始
col-submitted = 提交时间
col-started = 开始时间
col-ended = 结束时间
col-exit = 退出码
col-reason = 原因
col-walltime = 运行时限
col-card-hours = 卡时
col-gross = 原价
col-subsidy = 算力券补贴
col-payable = 应付
col-line = 行号
col-job = 作业
col-unit-price = 单价
col-heartbeat = 最近心跳
col-actions = 操作
col-time = 时间
col-principal = 操作者
col-action = 操作
col-target = 对象
col-outcome = 结果
center-unknown = 未知

network-title = 城市算力网
network-summary = 共 { $centers } 个算力中心（{ $online } 个在线），{ $cards } 张卡，当前空闲 { $free } 张。
network-table = 各算力中心的芯片、空闲卡数与挂牌价（算力券抵扣前）
network-map = 粤港澳大湾区算力中心
network-map-caption = 每个圆点代表一座有算力中心的城市，大小随装机卡数增长；有中心在线时显示为绿色。
network-elsewhere = 其他地区：
network-no-pools = 尚未上报芯片。

jobs-title = 我的作业
queue-title = 作业
jobs-filter-state = 状态
jobs-all = 全部
jobs-active = 未结束
jobs-filter-button = 筛选
jobs-none = 暂无作业。
jobs-next-page = 更早 →
jobs-bad-state = “{ $state }”不是作业状态。

job-title = 作业 { $id }：{ $name }
job-nodes = 个节点
job-cancel = 取消此作业
job-placement = 运行位置及原因
job-placed = 于 { $at } 分配到 { $center } 的 { $sku }（第 { $attempt } 次尝试）。
job-rejected = 无法接收的算力中心
job-history = 时间线
job-logs = 第 { $attempt } 次尝试的日志
job-command = 命令

submit-title = 提交作业
submit-name = 名称
submit-chip = 芯片
submit-any-chip = 任意芯片
submit-by-vendor = 按厂商
submit-by-sku = 按型号
submit-cards = 每节点卡数
submit-nodes = 节点数
submit-stack = 软件栈
submit-any-stack = 任意
submit-walltime = 运行时限
submit-walltime-help = 例如 30m、2h、1-00:00:00；只写数字表示分钟。
submit-max-price = 价格上限（元/卡时）
submit-command = 命令
submit-script = 或粘贴 #SBATCH 脚本
submit-script-help = 提供脚本时，由其中的 #SBATCH 行设定作业，上面的字段不再使用。
submit-quote = 询价
submit-button = 提交
submit-need-number = 需要一个整数
submit-bad-field = { $field }：{ $why }
quote-title = 报价
quote-intro = 按整个运行时限（{ $walltime }）计价，最优在前。尚未提交任何作业。
quote-none = 目前没有算力中心能接收此作业。

bills-title = 账单
bills-month = { $tenant } { $month } 账单
bills-tenant = 租户
bills-month-field = 月份
bills-show = 查看
bills-csv = 下载 CSV
bills-none = 本月没有计费用量。
bills-price-row = 价目行

centers-title = 算力中心
centers-drain = 停止接收
centers-undrain = 恢复接收
centers-drain-help = 停止接收的中心不再接收新作业，正在运行的作业会运行完。

audit-title = 审计日志
audit-intro = 每一次写操作和每一次拒绝，按时间先后排列。可用“suanli audit export”和“suanli audit verify”离线校验整个日志。
audit-allowed = 允许
audit-denied = 拒绝
