// Segment one tomogram with the trained model, cluster (MeanShift) and write the picks.
process PICK {
    tag "${tomo}"
    label 'process_medium'
    label 'process_gpu'
    container "${params.container_prefix}-pick-eval:${params.container_tag}"

    input:
    tuple val(tomo), path(tomogram), path(mask, stageAs: 'mask/*'), val(contrast)   // mask: [] for none; contrast dark|bright
    path model, stageAs: 'model/*'   // model.h5 and model_card.json side by side

    output:
    tuple val(tomo), path("${tomo}/candidates.csv"), emit: picks
    path "${tomo}/*",    emit: files
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    templearn-pick-eval pick ${tomogram} --weights model/model.h5 --out ${tomo} ${mask ? "--mask ${mask}" : ''} ${contrast == 'bright' ? '--contrast bright' : ''} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p ${tomo} && touch ${tomo}/candidates.csv
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
