"""Seeding a data directory with the demo classroom.

Names are composed from common surnames and given names so the roster looks
like a real Chinese class; PINs and passwords are random per data directory
and written to ``demo-credentials.json`` (0600) so a restarted demo can print
them again.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from edge.accounts import service
from edge.accounts.roster import RosterParse, RosterRow
from edge.config import HubConfig
from edge.storage.db import connect, transaction

CLASS_NAME = "三年级二班"
STUDENTS = 45
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
_GIVEN = [
    "子轩", "梓涵", "浩然", "欣怡", "一诺", "宇航", "诗涵", "俊杰", "雨桐", "思远",
    "嘉怡", "明轩", "可馨", "天佑", "若曦", "博文", "语嫣", "睿泽", "佳琪", "志强",
    "晓彤", "家豪", "梦瑶", "昊天", "静怡", "泽宇", "雅琪", "文博", "思琪", "皓轩",
    "紫萱", "一鸣", "欣妍", "子墨", "安琪", "宇轩", "雨萱", "铭泽", "晨曦", "建国",
    "丽娜", "伟杰", "思彤", "嘉懿", "沐阳",
]


@dataclass
class DemoCredentials:
    teacher_username: str
    teacher_password: str
    admin_username: str
    admin_password: str
    class_name: str
    student_pins: dict[str, str]


def demo_roster() -> list[tuple[str, str]]:
    """(number, name) for the demo class, deterministic."""
    out = []
    for i in range(STUDENTS):
        name = _SURNAMES[(i * 7) % len(_SURNAMES)] + _GIVEN[i % len(_GIVEN)]
        out.append((f"{i + 1:02d}", name))
    return out


def seed_demo(config: HubConfig) -> DemoCredentials:
    """Create the demo classroom once; later calls return the stored credentials."""
    creds_path = config.hub.data_dir / "demo-credentials.json"
    if creds_path.exists():
        return DemoCredentials(**json.loads(creds_path.read_text(encoding="utf-8")))
    db = connect(config.db_path, config.storage.busy_timeout_ms, config.storage.synchronous)
    try:
        teacher_pw = secrets.token_urlsafe(9)
        admin_pw = secrets.token_urlsafe(12)
        teacher_id = service.create_user(db, "teacher", "王老师", "teacher", teacher_pw)
        service.create_user(db, "admin", "信息中心管理员", "admin", admin_pw)
        with transaction(db):
            class_id = service.ensure_class(db, CLASS_NAME)
            service.assign_teacher(db, class_id, teacher_id)
        pins = {number: f"{secrets.randbelow(10_000):04d}" for number, _ in demo_roster()}
        parsed = RosterParse("utf-8", rows=[RosterRow(i + 2, name, number, CLASS_NAME, pins[number]) for i, (number, name) in enumerate(demo_roster())])
        service.import_roster(db, parsed, CLASS_NAME)
    finally:
        db.conn.close()
    creds = DemoCredentials("teacher", teacher_pw, "admin", admin_pw, CLASS_NAME, pins)
    for target in DEMO_CONTENT:
        module, _, func = target.partition(":")
        getattr(importlib.import_module(module), func)(config, creds)
    _write_private(creds_path, json.dumps(creds.__dict__, ensure_ascii=False, indent=2))
    return creds


# One line per capability that adds sample content to the demo classroom:
# "module:function", called as function(config, credentials) once, after the
# roster exists.
DEMO_CONTENT: list[str] = [
    "edge.lessons.demo:add_sample_lesson",
    "edge.devices.demo:seed_cart",
    "edge.quiz.demo:add_sample_quiz",
    "edge.speech.demo:add_sample",
]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
