# Build the Windows installer. UNVERIFIED (no Windows machine was available): this mirrors
# packaging/build.py step for step; see packaging/README.md "Windows: what is not verified".
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1 [-NoModel]
#
# Needs: Python 3.11 x64 on PATH as `py -3.11`; Visual Studio 2022 Build Tools + CMake (PyPI has only
# llama-cpp-python's sdist: the "llama-cpp-python" step builds the project's portable wheel with
# packaging\llamacpp_wheel.py, as `make` does on Linux: GGML_NATIVE=OFF, GGML_BACKEND_DL, one
# ggml-cpu-<variant>.dll per instruction-set level, no AMX; MSVC builds no zen4/cooperlake variant,
# so AVX-512 CPUs get icelake/cascadelake/skylakex there); or pass a wheel built that way with
# -LlamaWheel; Inno Setup 6 (iscc). The default model's base (resources\models\default.yaml) is
# fetched into %USERPROFILE%\.local\share\tsx-medtrans\models by the "default model" step.
param(
    [switch]$NoModel,
    [string]$LlamaWheel = ""
)
$ErrorActionPreference = "Stop"
$Root = Resolve-Path "$PSScriptRoot\..\.."
Set-Location $Root
$Version = (Select-String -Path desktop\__init__.py -Pattern '__version__ = "(.+)"').Matches[0].Groups[1].Value
$Venv = "build\pkg-venv-win"
$Stage = "build\windows-stage"
$Started = Get-Date
$Times = [ordered]@{}
function Step($Name, [scriptblock]$Body) {
    $t0 = Get-Date; Write-Host "== $Name"; & $Body
    if ($LASTEXITCODE -ne $null -and $LASTEXITCODE -ne 0) { throw "$Name failed ($LASTEXITCODE)" }
    $Times[$Name] = [math]::Round(((Get-Date) - $t0).TotalSeconds, 1)
}

Step "llama-cpp-python" {
    if (-not $LlamaWheel) {
        py -3.11 packaging\llamacpp_wheel.py build
        $script:LlamaWheel = (py -3.11 packaging\llamacpp_wheel.py path)
    }
}
Step "venv" {
    if (-not (Test-Path "$Venv\Scripts\python.exe")) { py -3.11 -m venv $Venv }
    # that exact wheel, never pip's cache (a cached wheel may have other flags); pip may not build it
    & "$Venv\Scripts\python.exe" -m pip install -q --no-cache-dir --no-deps --force-reinstall $LlamaWheel
    & "$Venv\Scripts\python.exe" -m pip install -q --no-cache-dir -c requirements\constraints.txt $LlamaWheel
    & "$Venv\Scripts\python.exe" -m pip install -q --only-binary llama-cpp-python -c requirements\constraints.txt -e ".[desktop,package]"
}
Step "default model" {
    # The base GGUF of the default model (resources\models\default.yaml, the one place it is named).
    $script:ModelFile, $script:ModelSha256 = (& "$Venv\Scripts\python.exe" -m medcore.modelspec base-file).Trim().Split(" ")
    if (-not $NoModel) { & "$Venv\Scripts\tsx-models.exe" fetch (& "$Venv\Scripts\python.exe" -m medcore.modelspec base) }
}
Step "pyinstaller" {
    & "$Venv\Scripts\python.exe" -m PyInstaller --noconfirm --clean --log-level WARN `
        --workpath build\pyinstaller-win\work --distpath build\pyinstaller-win\dist packaging\windows\tsx-medtrans.spec
}
Step "stage" {
    if (Test-Path $Stage) { Remove-Item -Recurse -Force $Stage }
    New-Item -ItemType Directory -Force "$Stage\models" | Out-Null
    Copy-Item -Recurse build\pyinstaller-win\dist\tsx-medtrans "$Stage\tsx-medtrans"
    foreach ($need in @("tsx-medtrans.exe", "tsx-medtrans-cli.exe", "_internal\llama_cpp\lib\llama.dll",
                        "_internal\llama_cpp\lib\ggml-cpu-x64.dll", "_internal\llama_cpp\lib\ggml-cpu-haswell.dll",
                        "_internal\PySide6\QtWebEngineProcess.exe", "_internal\resources\prompts\translation.yaml")) {
        if (-not (Test-Path "$Stage\tsx-medtrans\$need")) { throw "bundle lacks $need" }
    }
    if (Test-Path "$Stage\tsx-medtrans\_internal\llama_cpp\lib\ggml-cpu-sapphirerapids.dll") { throw "bundle has the AMX variant" }
    if (-not $NoModel) {
        $models = "$env:USERPROFILE\.local\share\tsx-medtrans\models"
        Copy-Item "$models\$ModelFile" "$Stage\models\$ModelFile"
        $hash = (Get-FileHash -Algorithm SHA256 "$Stage\models\$ModelFile").Hash.ToLower()
        if ($hash -ne $ModelSha256) { throw "model hash mismatch: $hash (expected $ModelSha256)" }
        "$hash  $ModelFile" | Set-Content -Encoding ascii "$Stage\models\SHA256SUMS"
    }
}
Step "self-test (unpacked bundle)" {
    & "$Stage\tsx-medtrans\tsx-medtrans-cli.exe" --self-test --json-out build\windows-selftest.json
}
Step "inno-setup" {
    $iscc = (Get-Command iscc -ErrorAction SilentlyContinue).Source
    if (-not $iscc) { $iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
    & $iscc "/DAppVersion=$Version" "/DStage=$Root\$Stage" "/DModelFile=$ModelFile" "/DModelSha256=$ModelSha256" `
        packaging\windows\tsx-medtrans.iss
}
$setup = Get-Item "dist\packages\tsx-medtrans-$Version-setup*.exe"
$bundle = (Get-ChildItem -Recurse -File "$Stage\tsx-medtrans" | Measure-Object -Sum Length).Sum
Write-Host "== sizes: bundle $([math]::Round($bundle/1MB,1)) MB; setup $(($setup | ForEach-Object { "$($_.Name) $([math]::Round($_.Length/1MB,1)) MB" }) -join ', ')"
Write-Host "== times: $(($Times.GetEnumerator() | ForEach-Object { "$($_.Key) $($_.Value) s" }) -join ', '); total $([math]::Round(((Get-Date) - $Started).TotalSeconds)) s"
