"""Data files of TSX-MedTrans: prompts, stage configs, web assets, icons, UI translations.

A package only so that installers and `importlib` can find the folder.
"""
