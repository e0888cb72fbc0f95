"""Regenerate the Simplified Chinese UI translation: lupdate -> fill from ZH below -> lrelease.

Run after changing UI strings: ``python -m scripts.update_i18n`` (needs PySide6's tools).
A string missing from ZH stays unfinished in the .ts (English at run time) and is listed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TS = REPO / "resources" / "i18n" / "tsx_medtrans_zh_CN.ts"
SOURCES = ["desktop/main_window.py", "desktop/term_highlighter.py", "desktop/model_controller.py",
           "desktop/document_controller.py", "desktop/glossary_panel.py", "desktop/model_dialog.py"]

ZH = {
    "Term": "术语", "Expected": "预期译法", "Found": "译文中", "Status": "状态",
    "No glossary loaded.": "未加载术语表。",
    "Glossary: %1 (%2 terms)": "术语表：%1（%2 条）",
    "%1 of %2 terms as expected, %3 to review": "%2 个术语中 %1 个符合预期，%3 个待复核",
    "%1 terms found in the source": "原文中发现 %1 个术语",
    "pending": "待翻译", "OK": "符合", "review: missing": "复核：缺失",
    "No model installed: run `tsx-models fetch` or choose a GGUF file.": "未安装模型：请运行 `tsx-models fetch` 或选择 GGUF 文件。",
    "Main": "主工具栏", "Open…": "打开…", "Save translation…": "保存译文…",
    "Export with term report…": "导出译文及术语报告…", "Load glossary…": "加载术语表…",
    "Clear glossary": "清除术语表", "Choose GGUF…": "选择 GGUF…", "Model settings…": "模型设置…",
    "Translate": "翻译", "Translate (Ctrl+Enter)": "翻译（Ctrl+Enter）", "Stop": "停止", "Copy": "复制",
    "Clear": "清空", "Model": "模型", "Auto": "自动",
    "Paste or open medical text (Chinese or English)…": "粘贴或打开医学文本（中文或英文）…",
    "The translation appears here.": "译文显示在这里。", "Terms": "术语", "No model": "无模型",
    "Attention": "注意力", "Cannot use this model: %1": "无法使用该模型：%1", "Loading %1…": "正在加载 %1…",
    "Model loaded in %1 s": "模型已加载，用时 %1 秒", "Choose a GGUF model": "选择 GGUF 模型",
    "GGUF models (*.gguf);;All files (*)": "GGUF 模型 (*.gguf);;所有文件 (*)",
    "Cannot read the glossary: %1": "无法读取术语表：%1", "Load term lists": "加载术语表",
    "Term lists (*.tsv *.csv *.xlsx *.jsonl *.txt);;All files (*)": "术语表 (*.tsv *.csv *.xlsx *.jsonl *.txt);;所有文件 (*)",
    "Load a model first.": "请先加载模型。", "Translating…": "正在翻译…", "Stopping…": "正在停止…",
    "%1 tok/s": "%1 词元/秒", "Stopped: the translation is incomplete.": "已停止：译文不完整。",
    "Done: %1 tokens in %2 s": "完成：%1 个词元，用时 %2 秒", "Translation failed: %1": "翻译失败：%1",
    "Opened %1 (%2)": "已打开 %1（%2）", "Open text": "打开文本", "Text files (*.txt);;All files (*)": "文本文件 (*.txt);;所有文件 (*)",
    "Save translation": "保存译文", "Text files (*.txt)": "文本文件 (*.txt)",
    "Export translation with term report": "导出译文及术语报告", "Text report (*.txt);;JSON (*.json)": "文本报告 (*.txt);;JSON (*.json)",
    "Model settings": "模型设置", "automatic (%1)": "自动（%1）",
    "Allow source text in debug logs (off keeps patient text out of logs)": "允许在调试日志中记录原文（关闭时患者文本不会写入日志）",
    "Weight repacking (faster; turn off if llama.cpp crashes on this CPU)": "权重重排（更快；若 llama.cpp 在此 CPU 上崩溃请关闭）",
    "Turned off by the environment variable TSX_NO_REPACK": "已被环境变量 TSX_NO_REPACK 关闭",
    "CPU threads": "CPU 线程数", "Context size (tokens)": "上下文长度（词元）", "GPU layers": "GPU 层数",
    "Base model only": "仅用基础模型",
    "Translate with the base model, without the tuned model's adapters": "用基础模型翻译，不加载微调模型的适配器",
    "%1 (base model only)": "%1（仅基础模型）",
    "Translating with the tuned model": "正在使用微调模型翻译",
    "Translating with the base model only": "正在仅使用基础模型翻译",
    # issue 13: default glossary, per-term review, clinical checks
    "Medical glossary": "医学术语表", "default medical glossary": "默认医学术语表",
    "The shipped medical glossary (HPO, TICO-19, CC-CEDICT); your own term lists come on top":
        "内置医学术语表（HPO、TICO-19、CC-CEDICT）；您自己的术语表优先",
    "Cannot save to your glossary: %1": "无法保存到您的术语表：%1", "Added to %1": "已添加到 %1",
    "Already in %1": "%1 中已有此条", "Add to my glossary": "添加到我的术语表",
    "Translation of %1 to save in your glossary:": "要保存到您术语表中的“%1”的译法：",
    "Accept the model's wording": "接受模型译法",
    "Mark the selected term as reviewed for this translation": "将所选术语标记为本次译文已复核",
    "Add to my glossary…": "添加到我的术语表…",
    "Save the wording selected in the translation (or typed) as this term's translation in your own glossary file":
        "将译文中选中（或输入）的措辞作为该术语的译法保存到您自己的术语表文件",
    "Sentence": "句子", "Check": "检查项", "Finding": "发现", "accepted": "已接受",
    "advisory (not required)": "提示（非必需）", "%1 translated in different ways: %2": "“%1”有不同译法：%2",
    "Clinical checks: after the translation": "临床检查：翻译完成后进行",
    "Clinical checks: %1 finding(s) to review": "临床检查：%1 项待复核",
    "Clinical checks: numbers, negations, sides and completeness carried over": "临床检查：数字、否定、左右侧与完整性均已保留",
    "Require glossary terms": "强制使用术语表译法",
    "Give the model the loaded glossary's translations of the terms in each sentence as required translations "
    "(models trained with them only)":
        "将已加载术语表中各句术语的译法作为必须采用的译法提供给模型（仅适用于以此训练过的模型）",
    "This model was not trained with required glossary terms in its prompt: base models copy the list instead "
    "of translating, so the terms are only checked":
        "该模型未经过提示中含必需术语的训练：基础模型会照抄术语列表而非翻译，因此术语仅作检查",
    "Parallel segments": "并行翻译句段数", "automatic (up to %1)": "自动（最多 %1）",
    "Sentences translated at the same time; 1 = one after another": "同时翻译的句子数；1 = 逐句翻译",
}


def tool(name: str) -> str:
    found = shutil.which(f"pyside6-{name}") or str(Path(sys.executable).parent / f"pyside6-{name}")
    return found


def main() -> int:
    subprocess.run([tool("lupdate"), *SOURCES, "-no-obsolete", "-ts", str(TS)], cwd=REPO, check=True)
    tree = ET.parse(TS)
    missing = []
    for message in tree.iter("message"):
        source = message.findtext("source")
        translation = message.find("translation")
        if source in ZH:
            translation.text = ZH[source]
            translation.attrib.pop("type", None)
        else:
            missing.append(source)
    tree.write(TS, encoding="utf-8", xml_declaration=True)
    subprocess.run([tool("lrelease"), str(TS), "-qm", str(TS.with_suffix(".qm"))], check=True)
    for source in missing:
        print(f"untranslated: {source!r}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
