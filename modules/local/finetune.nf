// Fine-tuning (the paper's second half): the trained model continued on annotated experimental tomograms.
process FINETUNE {
    tag "finetune"
    label 'process_high'
    label 'process_gpu'
    container "${params.container_prefix}-deepfinder-train:${params.container_tag}"

    input:
    path model,     stageAs: 'model/*'          // model.h5 and model_card.json side by side
    path tomograms, stageAs: 'annotated/t???/*'
    path picks,     stageAs: 'annotated/p???/*'   // paired with the tomograms by position

    output:
    path "finetune/{model.h5,model_card.json}", emit: model
    path "finetune/*",   emit: files
    path "versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def as_list = { x -> x instanceof List ? x : (x ? [x] : []) }
    def pairs = [as_list(tomograms), as_list(picks)].transpose().collect { t, p -> "--tomogram ${t} --picks ${p}" }.join(' ')
    """
    templearn-deepfinder-train finetune --weights model/model.h5 ${pairs} --out finetune --seed ${params.seed} ${args}

    cat <<-END_VERSIONS > versions.yml
    "${task.process}":
        templearn: \$(python -c 'import templearn; print(templearn.__version__)')
    END_VERSIONS
    """

    stub:
    """
    mkdir -p finetune && touch finetune/model.h5 finetune/model_card.json
    echo '"${task.process}": {templearn: stub}' > versions.yml
    """
}
