<?xml version='1.0' encoding='utf-8'?>
<TS version="2.1" language="zh_CN">
<context>
    <name>DocumentController</name>
    <message>
        <location filename="../../desktop/document_controller.py" line="92" />
        <source>Load a model first.</source>
        <translation>请先加载模型。</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="110" />
        <source>Translating…</source>
        <translation>正在翻译…</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="116" />
        <source>Stopping…</source>
        <translation>正在停止…</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="151" />
        <location filename="../../desktop/document_controller.py" line="172" />
        <source>%1 tok/s</source>
        <translation>%1 词元/秒</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="174" />
        <source>Stopped: the translation is incomplete.</source>
        <translation>已停止：译文不完整。</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="176" />
        <source>Done: %1 tokens in %2 s</source>
        <translation>完成：%1 个词元，用时 %2 秒</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="189" />
        <source>Translation failed: %1</source>
        <translation>翻译失败：%1</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="215" />
        <source>Opened %1 (%2)</source>
        <translation>已打开 %1（%2）</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="239" />
        <source>Open text</source>
        <translation>打开文本</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="240" />
        <source>Text files (*.txt);;All files (*)</source>
        <translation>文本文件 (*.txt);;所有文件 (*)</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="245" />
        <source>Save translation</source>
        <translation>保存译文</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="246" />
        <source>Text files (*.txt)</source>
        <translation>文本文件 (*.txt)</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="251" />
        <source>Export translation with term report</source>
        <translation>导出译文及术语报告</translation>
    </message>
    <message>
        <location filename="../../desktop/document_controller.py" line="252" />
        <source>Text report (*.txt);;JSON (*.json)</source>
        <translation>文本报告 (*.txt);;JSON (*.json)</translation>
    </message>
</context>
<context>
    <name>GlossaryPanel</name>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="46" />
        <source>Term</source>
        <translation>术语</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="46" />
        <source>Expected</source>
        <translation>预期译法</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="46" />
        <source>Found</source>
        <translation>译文中</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="46" />
        <source>Status</source>
        <translation>状态</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="54" />
        <source>Accept the model's wording</source>
        <translation>接受模型译法</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="55" />
        <source>Mark the selected term as reviewed for this translation</source>
        <translation>将所选术语标记为本次译文已复核</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="56" />
        <source>Add to my glossary…</source>
        <translation>添加到我的术语表…</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="57" />
        <source>Save the wording selected in the translation (or typed) as this term's translation in your own glossary file</source>
        <translation>将译文中选中（或输入）的措辞作为该术语的译法保存到您自己的术语表文件</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="65" />
        <source>Sentence</source>
        <translation>句子</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="65" />
        <source>Check</source>
        <translation>检查项</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="65" />
        <source>Finding</source>
        <translation>发现</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="97" />
        <source>No glossary loaded.</source>
        <translation>未加载术语表。</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="99" />
        <source>Glossary: %1 (%2 terms)</source>
        <translation>术语表：%1（%2 条）</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="105" />
        <source>%1 of %2 terms as expected, %3 to review</source>
        <translation>%2 个术语中 %1 个符合预期，%3 个待复核</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="108" />
        <source>%1 terms found in the source</source>
        <translation>原文中发现 %1 个术语</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="118" />
        <source>pending</source>
        <translation>待翻译</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="120" />
        <source>OK</source>
        <translation>符合</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="122" />
        <source>accepted</source>
        <translation>已接受</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="124" />
        <source>advisory (not required)</source>
        <translation>提示（非必需）</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="126" />
        <source>review: missing</source>
        <translation>复核：缺失</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="151" />
        <source>%1 translated in different ways: %2</source>
        <translation>“%1”有不同译法：%2</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="165" />
        <source>Clinical checks: after the translation</source>
        <translation>临床检查：翻译完成后进行</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="167" />
        <source>Clinical checks: %1 finding(s) to review</source>
        <translation>临床检查：%1 项待复核</translation>
    </message>
    <message>
        <location filename="../../desktop/glossary_panel.py" line="169" />
        <source>Clinical checks: numbers, negations, sides and completeness carried over</source>
        <translation>临床检查：数字、否定、左右侧与完整性均已保留</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <location filename="../../desktop/main_window.py" line="83" />
        <source>No model installed: run `tsx-models fetch` or choose a GGUF file.</source>
        <translation>未安装模型：请运行 `tsx-models fetch` 或选择 GGUF 文件。</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="88" />
        <source>Main</source>
        <translation>主工具栏</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="91" />
        <source>Open…</source>
        <translation>打开…</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="92" />
        <source>Save translation…</source>
        <translation>保存译文…</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="93" />
        <source>Export with term report…</source>
        <translation>导出译文及术语报告…</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="94" />
        <source>Load glossary…</source>
        <translation>加载术语表…</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="95" />
        <source>Clear glossary</source>
        <translation>清除术语表</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="96" />
        <source>Medical glossary</source>
        <translation>医学术语表</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="97" />
        <source>The shipped medical glossary (HPO, TICO-19, CC-CEDICT); your own term lists come on top</source>
        <translation>内置医学术语表（HPO、TICO-19、CC-CEDICT）；您自己的术语表优先</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="99" />
        <source>Choose GGUF…</source>
        <translation>选择 GGUF…</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="100" />
        <source>Model settings…</source>
        <translation>模型设置…</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="102" />
        <source>Base model only</source>
        <translation>仅用基础模型</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="103" />
        <source>Translate with the base model, without the tuned model's adapters</source>
        <translation>用基础模型翻译，不加载微调模型的适配器</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="105" />
        <source>Require glossary terms</source>
        <translation>强制使用术语表译法</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="106" />
        <source>Translate</source>
        <translation>翻译</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="108" />
        <source>Translate (Ctrl+Enter)</source>
        <translation>翻译（Ctrl+Enter）</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="109" />
        <source>Stop</source>
        <translation>停止</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="110" />
        <source>Copy</source>
        <translation>复制</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="111" />
        <source>Clear</source>
        <translation>清空</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="114" />
        <source>Model</source>
        <translation>模型</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="116" />
        <source>Auto</source>
        <translation>自动</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="135" />
        <source>Paste or open medical text (Chinese or English)…</source>
        <translation>粘贴或打开医学文本（中文或英文）…</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="138" />
        <source>The translation appears here.</source>
        <translation>译文显示在这里。</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="154" />
        <source>Terms</source>
        <translation>术语</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="160" />
        <source>No model</source>
        <translation>无模型</translation>
    </message>
    <message>
        <location filename="../../desktop/main_window.py" line="207" />
        <source>Attention</source>
        <translation>注意力</translation>
    </message>
</context>
<context>
    <name>ModelController</name>
    <message>
        <location filename="../../desktop/model_controller.py" line="82" />
        <location filename="../../desktop/model_controller.py" line="119" />
        <source>Cannot use this model: %1</source>
        <translation>无法使用该模型：%1</translation>
    </message>
    <message>
        <location filename="../../desktop/model_controller.py" line="83" />
        <location filename="../../desktop/model_controller.py" line="116" />
        <source>No model</source>
        <translation>无模型</translation>
    </message>
    <message>
        <location filename="../../desktop/model_controller.py" line="87" />
        <source>Loading %1…</source>
        <translation>正在加载 %1…</translation>
    </message>
    <message>
        <location filename="../../desktop/model_controller.py" line="110" />
        <source>Model loaded in %1 s</source>
        <translation>模型已加载，用时 %1 秒</translation>
    </message>
    <message>
        <location filename="../../desktop/model_controller.py" line="128" />
        <source>%1 (base model only)</source>
        <translation>%1（仅基础模型）</translation>
    </message>
    <message>
        <location filename="../../desktop/model_controller.py" line="147" />
        <source>Choose a GGUF model</source>
        <translation>选择 GGUF 模型</translation>
    </message>
    <message>
        <location filename="../../desktop/model_controller.py" line="148" />
        <source>GGUF models (*.gguf);;All files (*)</source>
        <translation>GGUF 模型 (*.gguf);;所有文件 (*)</translation>
    </message>
    <message>
        <location filename="../../desktop/model_controller.py" line="181" />
        <source>Translating with the tuned model</source>
        <translation>正在使用微调模型翻译</translation>
    </message>
    <message>
        <location filename="../../desktop/model_controller.py" line="182" />
        <source>Translating with the base model only</source>
        <translation>正在仅使用基础模型翻译</translation>
    </message>
    <message>
        <location filename="../../desktop/model_controller.py" line="207" />
        <source>Give the model the loaded glossary's translations of the terms in each sentence as required translations (models trained with them only)</source>
        <translation>将已加载术语表中各句术语的译法作为必须采用的译法提供给模型（仅适用于以此训练过的模型）</translation>
    </message>
    <message>
        <location filename="../../desktop/model_controller.py" line="209" />
        <source>This model was not trained with required glossary terms in its prompt: base models copy the list instead of translating, so the terms are only checked</source>
        <translation>该模型未经过提示中含必需术语的训练：基础模型会照抄术语列表而非翻译，因此术语仅作检查</translation>
    </message>
</context>
<context>
    <name>ModelSettingsDialog</name>
    <message>
        <location filename="../../desktop/model_dialog.py" line="15" />
        <source>Model settings</source>
        <translation>模型设置</translation>
    </message>
    <message>
        <location filename="../../desktop/model_dialog.py" line="20" />
        <source>automatic (%1)</source>
        <translation>自动（%1）</translation>
    </message>
    <message>
        <location filename="../../desktop/model_dialog.py" line="32" />
        <source>automatic (up to %1)</source>
        <translation>自动（最多 %1）</translation>
    </message>
    <message>
        <location filename="../../desktop/model_dialog.py" line="34" />
        <source>Sentences translated at the same time; 1 = one after another</source>
        <translation>同时翻译的句子数；1 = 逐句翻译</translation>
    </message>
    <message>
        <location filename="../../desktop/model_dialog.py" line="35" />
        <source>Weight repacking (faster; turn off if llama.cpp crashes on this CPU)</source>
        <translation>权重重排（更快；若 llama.cpp 在此 CPU 上崩溃请关闭）</translation>
    </message>
    <message>
        <location filename="../../desktop/model_dialog.py" line="41" />
        <source>Turned off by the environment variable TSX_NO_REPACK</source>
        <translation>已被环境变量 TSX_NO_REPACK 关闭</translation>
    </message>
    <message>
        <location filename="../../desktop/model_dialog.py" line="42" />
        <source>Allow source text in debug logs (off keeps patient text out of logs)</source>
        <translation>允许在调试日志中记录原文（关闭时患者文本不会写入日志）</translation>
    </message>
    <message>
        <location filename="../../desktop/model_dialog.py" line="44" />
        <source>CPU threads</source>
        <translation>CPU 线程数</translation>
    </message>
    <message>
        <location filename="../../desktop/model_dialog.py" line="45" />
        <source>Context size (tokens)</source>
        <translation>上下文长度（词元）</translation>
    </message>
    <message>
        <location filename="../../desktop/model_dialog.py" line="46" />
        <source>GPU layers</source>
        <translation>GPU 层数</translation>
    </message>
    <message>
        <location filename="../../desktop/model_dialog.py" line="47" />
        <source>Parallel segments</source>
        <translation>并行翻译句段数</translation>
    </message>
</context>
<context>
    <name>TermHighlighter</name>
    <message>
        <location filename="../../desktop/term_highlighter.py" line="107" />
        <source>Cannot read the glossary: %1</source>
        <translation>无法读取术语表：%1</translation>
    </message>
    <message>
        <location filename="../../desktop/term_highlighter.py" line="112" />
        <source>default medical glossary</source>
        <translation>默认医学术语表</translation>
    </message>
    <message>
        <location filename="../../desktop/term_highlighter.py" line="141" />
        <source>Load term lists</source>
        <translation>加载术语表</translation>
    </message>
    <message>
        <location filename="../../desktop/term_highlighter.py" line="142" />
        <source>Term lists (*.tsv *.csv *.xlsx *.jsonl *.txt);;All files (*)</source>
        <translation>术语表 (*.tsv *.csv *.xlsx *.jsonl *.txt);;所有文件 (*)</translation>
    </message>
    <message>
        <location filename="../../desktop/term_highlighter.py" line="240" />
        <source>Cannot save to your glossary: %1</source>
        <translation>无法保存到您的术语表：%1</translation>
    </message>
    <message>
        <location filename="../../desktop/term_highlighter.py" line="242" />
        <source>Added to %1</source>
        <translation>已添加到 %1</translation>
    </message>
    <message>
        <location filename="../../desktop/term_highlighter.py" line="242" />
        <source>Already in %1</source>
        <translation>%1 中已有此条</translation>
    </message>
    <message>
        <location filename="../../desktop/term_highlighter.py" line="253" />
        <source>Add to my glossary</source>
        <translation>添加到我的术语表</translation>
    </message>
    <message>
        <location filename="../../desktop/term_highlighter.py" line="254" />
        <source>Translation of %1 to save in your glossary:</source>
        <translation>要保存到您术语表中的“%1”的译法：</translation>
    </message>
</context>
</TS>