; Inno Setup 6 script for TSX-MedTrans (Windows x64). UNVERIFIED: never compiled here (no Windows
; machine); kept in step with the Linux packages (packaging/build.py): same layout, same components.
;
;   Linux package                      Windows component   installs to
;   tsx-medtrans (no torch)            main (fixed)        {app}\            (PyInstaller one-folder)
;   tsx-medtrans-model-qwen1.5b        model (default on)  {app}\models\     (GGUF + SHA256SUMS)
; Attention views are part of main: llama.cpp computes the attention (there is no torch add-on).
;
; Build: packaging\windows\build.ps1 runs PyInstaller, prepares the staging folder and calls
;   iscc /DAppVersion=0.1.0 /DStage=<staging dir> /DModelFile=<gguf> /DModelSha256=<sha256> packaging\windows\tsx-medtrans.iss
; build.ps1 passes ModelFile/ModelSha256 from `python -m medcore.modelspec base-file`: the base of the
; default model named once, in resources/models/default.yaml.
; The app hash-checks the model on each user's first start (tsx_firstrun.py); the installer also
; checks it once after copying (GetSHA256OfFile) and refuses to finish on a mismatch.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef Stage
  #define Stage "..\..\build\windows-stage"
#endif
#ifndef ModelFile
  #error ModelFile is not defined: build with packaging\windows\build.ps1 (it passes /DModelFile and /DModelSha256)
#endif
#ifndef ModelSha256
  #error ModelSha256 is not defined: build with packaging\windows\build.ps1
#endif

[Setup]
AppId={{6B0F3C0E-5E7A-4B5E-9C55-3C1D2A7E7B21}
AppName=TSX-MedTrans
AppVersion={#AppVersion}
AppPublisher=TSX-MedTrans maintainers
DefaultDirName={autopf}\TSX-MedTrans
DefaultGroupName=TSX-MedTrans
; Per-user install without admin rights by default; IT can choose "all users" (admin) instead.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog commandline
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist\packages
OutputBaseFilename=tsx-medtrans-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\tsx-medtrans.ico
UninstallDisplayIcon={app}\tsx-medtrans.exe
Compression=lzma2/max
SolidCompression=yes
; The model (1.1 GB) with the app may exceed one 2 GB-limited slice.
DiskSpanning=yes
DiskSliceSize=max
WizardStyle=modern
DisableProgramGroupPage=yes

[Languages]
Name: "en"; MessagesFile: "compiler:Default.isl"
Name: "zh"; MessagesFile: "compiler:Languages\ChineseSimplified.isl"

[Types]
Name: "standard"; Description: "Translator with the default model"
Name: "custom"; Description: "Custom"; Flags: iscustom

[Components]
Name: "main"; Description: "TSX-MedTrans (translator, term checks, attention views, self-test)"; Types: standard custom; Flags: fixed
Name: "model"; Description: "Default model: Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB)"; Types: standard

[Files]
Source: "{#Stage}\tsx-medtrans\*"; DestDir: "{app}"; Components: main; Flags: ignoreversion recursesubdirs createallsubdirs
Source: "{#Stage}\models\{#ModelFile}"; DestDir: "{app}\models"; Components: model; Flags: ignoreversion nocompression
Source: "{#Stage}\models\SHA256SUMS"; DestDir: "{app}\models"; Components: model; Flags: ignoreversion

[Icons]
Name: "{autoprograms}\TSX-MedTrans"; Filename: "{app}\tsx-medtrans.exe"
Name: "{autoprograms}\TSX-MedTrans self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\tsx-medtrans-cli.exe"" --self-test"
Name: "{autodesktop}\TSX-MedTrans"; Filename: "{app}\tsx-medtrans.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; Flags: unchecked

[Run]
Filename: "{app}\tsx-medtrans-cli.exe"; Parameters: "--self-test --json-out ""{app}\selftest-install.json"""; Description: "Run the self-test now (1-2 min)"; Flags: postinstall unchecked runhidden
Filename: "{app}\tsx-medtrans.exe"; Description: "{cm:LaunchProgram,TSX-MedTrans}"; Flags: postinstall nowait skipifsilent

[UninstallDelete]
Type: files; Name: "{app}\selftest-install.json"

[Code]
procedure CurStepChanged(CurStep: TSetupStep);
var
  Path, Digest: String;
begin
  if (CurStep = ssPostInstall) and WizardIsComponentSelected('model') then
  begin
    Path := ExpandConstant('{app}\models\{#ModelFile}');
    Digest := GetSHA256OfFile(Path);
    if CompareText(Digest, '{#ModelSha256}') <> 0 then
    begin
      MsgBox('The model file was damaged while installing (sha256 ' + Digest + '). ' +
             'Run the installer again from an undamaged copy.', mbCriticalError, MB_OK);
      Abort;
    end;
  end;
end;
