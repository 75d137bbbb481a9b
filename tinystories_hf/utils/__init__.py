"""What every stage uses and none of them owns: writing a folder whole (`atomic`), reading untrusted JSON
(`json_files`), releasing memory-mapped pages (`mapped_pages`), running a function in a forked process beside the
run (`forked`), probing the Hub before a request (`hub_access`), importing an optional dependency (`extras`).
Nothing here imports a stage.
"""
