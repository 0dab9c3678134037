// Precision, recall and F1 of Template Learning's picks, template matching as the baseline.
process EVALUATE {
    tag "evaluate"
    label 'process_single'
    container "${params.container_prefix}-pick-eval:${params.container_tag}"

    input:
    path picks,    stageAs: 'in/learning/p???/*'
    path truth,    stageAs: 'in/truth/t???/*'
    path baseline, stageAs: 'in/matching/m???/*'   // [] without template matching
    path tomograms, stageAs: 'in/tomograms/v???/*' // paired with truth: the true/false/missed pictures

    output:
    path "evaluate/report.json", emit: report
    path "evaluate/*",           emit: files
    path "versions.yml",         emit: versions

    script:
    def args = task.ext.args ?: ''
    def as_list = { x -> x instanceof List ? x : (x ? [x] : []) }
    def pick_args = as_list(picks).collect { p -> "--picks ${p}" }.join(' ')
    def truth_args = as_list(truth).collect { t -> "--truth ${t}" }.join(' ')
    def baseline_args = as_list(baseline).collect { b -> "--baseline ${b}" }.join(' ')
    def tomo_args = as_list(tomograms).collect { v -> "--tomogram ${v}" }.join(' ')
    """
    templearn-pick-eval evaluate ${pick_args} ${truth_args} ${baseline_args} ${tomo_args} --out evaluate ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p evaluate && echo '{}' > evaluate/report.json
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
