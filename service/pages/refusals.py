"""The pages a refused launch gets: what happened and what to do, in zh-CN; never a trace."""
from __future__ import annotations

from dataclasses import dataclass

from .common import problem


@dataclass(frozen=True)
class Refusal:
    status: int
    title: str
    message: str
    todo: str


REFUSALS = {
    "malformed": Refusal(400, "链接不完整", "打开的申领链接缺少信息或格式不正确。",
                         "请回到您使用的 App（如支付宝、微信、银行 App），重新进入电子社保卡申领。"),
    "expired": Refusal(403, "链接已过期", "申领链接只在生成后几分钟内有效，这个链接已经过期。",
                       "请回到 App 重新进入电子社保卡申领，会生成新的链接。"),
    "bad_signature": Refusal(403, "链接无法验证", "这个链接不是由您使用的 App 生成的，或者在传递中被修改过。"
                                                 "为了保护您的个人信息，页面没有打开。",
                             "请只从 App 内的电子社保卡入口进入；如果问题持续，请联系 App 客服。"),
    "replayed": Refusal(403, "链接已使用过", "每个申领链接只能打开一次，这个链接已经被打开过。",
                        "请回到 App 重新进入电子社保卡申领。"),
    "return_url": Refusal(400, "链接配置有误", "App 提供的返回地址没有在平台登记，页面没有打开，您的信息也没有被使用。",
                          "请联系 App 客服处理，或稍后再试。"),
    "citizen": Refusal(400, "身份信息无法读取", "链接中的实名信息无法读取或不完整。",
                       "请在 App 中确认您的实名信息（姓名、身份证号）后重新进入。"),
    "channel": Refusal(403, "渠道未开通", "您使用的 App 尚未开通电子社保卡页面服务。",
                       "请通过其他已开通的渠道申领，或联系 App 客服。"),
    "throttled": Refusal(429, "尝试次数过多", "来自您网络的无效链接过多，已暂时停止受理。",
                         "请稍等几分钟后，从 App 重新进入。"),
}


def refusal_page(reason: str):
    refusal = REFUSALS[reason]
    return problem(refusal.title, refusal.message, refusal.todo, refusal.status, reason=reason)
